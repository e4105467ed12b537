"""
What the store tells its callers when a write cannot be done.

The data-access functions turn PostgreSQL's integrity errors into these, naming the field a
person would correct, so the web layer can answer a 4xx with that field and the SIP layer a
clear status, without knowing SQL.
"""


class StoreError(Exception):
    """The store cannot do what was asked (not a mistake of the caller's input)."""


class NotFound(StoreError):
    """No such object for this ISP: another ISP's objects look exactly like missing ones."""

    def __init__(self, what: str):
        super().__init__(f"{what} not found")
        self.what = what


class Invalid(StoreError):
    """A value the caller gave cannot be stored; `field` names it."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class Conflict(Invalid):
    """A value that must be unique is already taken."""


class LimitReached(StoreError):
    """A plan limit (such as max subscribers) would be passed by this write."""

    def __init__(self, limit: str, value: int):
        super().__init__(f"{limit} of {value} reached")
        self.limit = limit
        self.value = value


class NotAllowed(StoreError):
    """The account may not do this now (suspended, waiting for activation, locked)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class StoreUnavailable(StoreError):
    """PostgreSQL cannot be reached now (it crashed, restarts, or the network to it broke).

    Nothing the caller did is wrong: the web answers 503 and SIP 503, both with
    `Retry-After: retry_after`, while the store service reconnects. Work refused at once
    wrote nothing; work whose connection broke under it was rolled back by the server,
    unless the break came after its COMMIT had reached it (then it is unknown)."""

    def __init__(self, reason: str, retry_after: int = 5):
        super().__init__(f"the database is unavailable ({reason}); try again in {retry_after} s")
        self.reason = reason
        self.retry_after = retry_after


def quiet_when_unavailable(log, text: str, **fields):
    """An errback for timed work that logs a failure with its traceback, except a lost
    database: the store service logs that once, and the timer tries again anyway."""
    def errback(failure):
        if not failure.check(StoreUnavailable):
            log.failure(text, failure, **fields)
    return errback
