"""
HTTP errors as JSON bodies: `{"error": code, "message": ..., "field": ...}`.

Store errors map onto statuses here, once: a missing or foreign object is 404 (another
ISP's objects are indistinguishable from missing ones), a bad value 422 naming the field,
a taken name or a reached limit 409, a store that cannot answer now 503 with `retry_after`
(also sent as the Retry-After header).
"""

from __future__ import annotations

from typing import Any

from wevoip.store.errors import Conflict, Invalid, LimitReached, NotFound, StoreError, StoreUnavailable

RETRY_AFTER = 5     # seconds, for a 503 that knows no better (the store is still starting)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any):
        super().__init__(message)
        self.status = status
        self.body = {"error": code, "message": message, **extra}


def from_store(error: StoreError) -> ApiError:
    if isinstance(error, NotFound):
        return ApiError(404, "not_found", str(error))
    if isinstance(error, Conflict):
        return ApiError(409, "conflict", str(error), field=error.field)
    if isinstance(error, Invalid):
        return ApiError(422, "invalid", str(error), field=error.field)
    if isinstance(error, LimitReached):
        return ApiError(409, "limit_reached", f"the plan allows {error.value} ({error.limit})",
                        limit=error.limit, value=error.value)
    if isinstance(error, StoreUnavailable):
        return ApiError(503, "unavailable", str(error), retry_after=error.retry_after)
    return ApiError(503, "unavailable", str(error), retry_after=RETRY_AFTER)
