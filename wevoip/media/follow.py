"""A second Deferred for one result: several callers wait on one release, close or stop."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure


def follow(deferred: defer.Deferred) -> defer.Deferred:
    """A new Deferred with `deferred`'s result (or failure), leaving `deferred` untouched."""
    follower = defer.Deferred()

    def settle(result: Any) -> Any:
        if isinstance(result, Failure):
            follower.errback(result)
        else:
            follower.callback(result)
        return result

    deferred.addBoth(settle)
    return follower
