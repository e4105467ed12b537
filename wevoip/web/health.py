"""
`/healthz`: what a load balancer or an operator's script asks before trusting the node.

It answers 200 only once the node is ready and the store answers (503 "starting" before
that, and 503 with Retry-After while a lost database is being reconnected), and lists every
bound listener either way, so a failing check says what is missing.
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

from klein import Klein


def add_health_route(app: Klein, report: Callable[[], Awaitable[dict[str, Any]]]) -> None:
    @app.route("/healthz", methods=["GET"])
    async def healthz(request) -> bytes:
        result = await report()
        request.setResponseCode(200 if result["status"] == "ok" else 503)
        if "retry_after" in result:
            request.setHeader(b"Retry-After", str(result["retry_after"]).encode())
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Cache-Control", b"no-store")
        return json.dumps(result, indent=2).encode()
