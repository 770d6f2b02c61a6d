"""Which failures redo the whole batch (transient) and which are the event's fault."""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

from lastline_shared.consumer import is_transient


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def _dbapi(sqlstate: str) -> sa_exc.DBAPIError:
    return sa_exc.DBAPIError("UPDATE ...", {}, _PgError(sqlstate))


def test_lost_races_are_transient() -> None:
    assert is_transient(_dbapi("40P01"))  # deadlock detected
    assert is_transient(_dbapi("40001"))  # serialization failure
    assert is_transient(sa_exc.OperationalError("SELECT 1", {}, Exception("connection refused")))
    assert is_transient(ConnectionResetError())


def test_bad_data_is_not_transient() -> None:
    assert not is_transient(_dbapi("23505"))  # unique violation: the event's own conflict
    assert not is_transient(ValueError("bad"))
