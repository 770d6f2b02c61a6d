// Live updates: the server announces committed batches over server-sent events; the page then
// fetches its content again (same view and filters) and swaps it in. The content is HTML that
// the server rendered with every value escaped; parsed markup does not run scripts, and the
// Content-Security-Policy forbids inline ones.
(function () {
  "use strict";
  var body = document.body;
  var view = body.dataset.view || "public";
  var query = body.dataset.query || "";
  var live = document.getElementById("live");
  var content = document.getElementById("content");
  var url = "/dashboard/content?view=" + encodeURIComponent(view) + (query ? "&" + query : "");
  var inFlight = false;
  var again = false;
  var timer = null;

  function say(text, on) {
    live.textContent = text;
    live.classList.toggle("on", !!on);
  }

  function refresh() {
    if (inFlight) { again = true; return; }
    inFlight = true;
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString("<main>" + html + "</main>", "text/html");
        content.replaceChildren.apply(content, Array.prototype.slice.call(doc.body.firstChild.childNodes));
        say("live · updated " + new Date().toLocaleTimeString(), true);
        live.classList.add("flash");
        setTimeout(function () { live.classList.remove("flash"); }, 800);
      })
      .catch(function () { say("live · update failed, retrying", false); })
      .finally(function () {
        inFlight = false;
        if (again) { again = false; schedule(); }
      });
  }

  function schedule() {
    // Many batches in a burst become one refresh.
    if (timer) { return; }
    timer = setTimeout(function () { timer = null; refresh(); }, 250);
  }

  if (!window.EventSource) { say("live updates need a newer browser", false); return; }
  var lastSeq = null;
  var source = new EventSource("/dashboard/stream");
  source.addEventListener("open", function () { say("live", true); });
  source.addEventListener("projected", function (event) {
    var seq = null;
    try { seq = JSON.parse(event.data).seq; } catch (e) { seq = null; }
    // The first message after (re)connecting is the current state: refresh only if it moved.
    if (lastSeq !== null && seq !== lastSeq) { schedule(); }
    lastSeq = seq;
  });
  source.addEventListener("error", function () { say("reconnecting…", false); });
})();
