"""
The one Klein app behind the web listeners: health, the API and the consoles.

Errors that no route handled (an unknown path, a wrong method, a bug) leave as JSON, never
as Twisted's HTML page with a traceback; a lost database as 503 with Retry-After, not
logged (the store service logs the loss once).
"""

from __future__ import annotations

import json

from klein import Klein
from twisted.logger import Logger
from werkzeug.exceptions import HTTPException

from wevoip.config import Config
from wevoip.store.errors import StoreUnavailable
from wevoip.web.api.app import ApiApp
from wevoip.web.console.app import ConsoleApp
from wevoip.web.api.routes import Services
from wevoip.web.health import add_health_route
from wevoip.web.vendor import add_vendor_routes

log = Logger(namespace="wevoip.web")


def build_web_app(store, health_report, config: Config, reactor, services: Services | None = None) -> Klein:
    app = Klein()
    add_health_route(app, health_report)
    ApiApp(app, store, services)
    add_vendor_routes(app)
    ConsoleApp(app, store, config, reactor, services or Services())

    @app.handle_errors(Exception)
    def error(request, failure) -> bytes:
        request.setHeader(b"Content-Type", b"application/json")
        if failure.check(StoreUnavailable):
            request.setResponseCode(503)
            request.setHeader(b"Retry-After", str(failure.value.retry_after).encode())
            return json.dumps({"error": "unavailable", "message": str(failure.value),
                               "retry_after": failure.value.retry_after}).encode()
        if failure.check(HTTPException):
            request.setResponseCode(failure.value.code)
            return json.dumps({"error": failure.value.name.lower().replace(" ", "_"),
                               "message": failure.value.description}).encode()
        log.failure("unhandled error serving {path}", failure, path=request.path)
        request.setResponseCode(500)
        return json.dumps({"error": "internal", "message": "internal error"}).encode()

    return app
