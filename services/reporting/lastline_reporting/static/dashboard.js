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
        enhance(content);
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

  // Sortable tables (headers with data-sort, cells with data-value) that show their first
  // data-limit rows until asked for all; the choice survives live refreshes.
  var tables = {};

  function arrange(table, state) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var heads = table.tHead.rows[0].cells;
    if (state.col !== null && rows.length > 1) {
      var numeric = heads[state.col].dataset.sort === "number";
      var order = new Map(rows.map(function (row, i) { return [row, i]; }));
      var key = function (row) {
        var raw = row.cells[state.col] ? row.cells[state.col].dataset.value || "" : "";
        return numeric ? (raw === "" ? -1 : Number(raw)) : raw.toLowerCase();
      };
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        var d = numeric ? x - y : x.localeCompare(y);
        return d * state.dir || order.get(a) - order.get(b);
      });
      rows.forEach(function (row) { body.appendChild(row); });
    }
    Array.prototype.forEach.call(heads, function (th, col) {
      if (!th.dataset.sort) { return; }
      th.setAttribute("aria-sort", col !== state.col ? "none" : state.dir > 0 ? "ascending" : "descending");
    });
    var limit = Number(table.dataset.limit || 0);
    var holder = table.parentNode;
    var toggle = holder.nextElementSibling;
    if (!limit || rows.length <= limit) { return; }
    rows.forEach(function (row, i) { row.hidden = !state.all && i >= limit; });
    if (!toggle || !toggle.classList.contains("show-all")) {
      toggle = document.createElement("button");
      toggle.type = "button";
      toggle.className = "link show-all";
      toggle.addEventListener("click", function () { state.all = !state.all; arrange(table, state); });
      holder.parentNode.insertBefore(toggle, holder.nextSibling);
    }
    toggle.textContent = state.all ? "Show the first " + limit : "Show all " + rows.length;
    toggle.setAttribute("aria-expanded", state.all ? "true" : "false");
  }

  function enhance(root) {
    Array.prototype.forEach.call(root.querySelectorAll("table.sortable"), function (table) {
      var state = tables[table.id] || (tables[table.id] = { col: null, dir: 1, all: false });
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
        if (!th.dataset.sort) { return; }
        var button = document.createElement("button");
        button.type = "button";
        button.className = "sort";
        button.textContent = th.textContent;
        th.replaceChildren(button);
        button.addEventListener("click", function () {
          // Numbers sort largest first, names A to Z; a second click reverses.
          state.dir = state.col === col ? -state.dir : th.dataset.sort === "number" ? -1 : 1;
          state.col = col;
          arrange(table, state);
        });
      });
      arrange(table, state);
    });
  }
  enhance(content);

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
