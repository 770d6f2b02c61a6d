"""The one error type of lastline_infra: its message is a single line that says what to do."""


class InfraError(RuntimeError):
    """A prerequisite is missing or a server did not come up; ``str(err)`` tells the fix."""
