"""
`/healthz`: what a load balancer or an operator's script asks before trusting the node.

It answers 200 only when the store answers, and lists every bound listener either way,
so a failing check says what is missing.
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

from klein import Klein


class HealthApp:
    app = Klein()

    def __init__(self, report: Callable[[], Awaitable[dict[str, Any]]]):
        self._report = report

    @app.route("/healthz", methods=["GET"])
    async def healthz(self, request) -> bytes:
        report = await self._report()
        request.setResponseCode(200 if report["status"] == "ok" else 503)
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Cache-Control", b"no-store")
        return json.dumps(report, indent=2).encode()

    @app.handle_errors(Exception)
    def error(self, request, failure) -> bytes:
        """Every error leaves as JSON, never as Twisted's HTML traceback page."""
        from werkzeug.exceptions import HTTPException

        request.setHeader(b"Content-Type", b"application/json")
        if failure.check(HTTPException):
            code = failure.value.code
            request.setResponseCode(code)
            return json.dumps({"error": failure.value.name.lower().replace(" ", "_"),
                               "message": failure.value.description}).encode()
        request.setResponseCode(500)
        return json.dumps({"error": "internal", "message": "internal error"}).encode()
