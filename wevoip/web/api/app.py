"""
The API as a Klein app: every route of the table behind the same gate.

The gate, in order: a live store; a valid token with the route's scope; the path's ISP is
the token's own (else 404); customer-wide tokens only where the route allows them; a JSON
body that fits the route's schema, with unknown fields refused by name. Then the handler,
once per Idempotency-Key.
"""

from __future__ import annotations

import hashlib
import re

import jsonschema
from klein import Klein

from wevoip.store import idempotency, ownership
from wevoip.store.errors import Conflict, StoreError
from wevoip.web.api import customers, isps, network  # noqa: F401 (they fill the route table)
from wevoip.web.api import billing  # noqa: F401 (it fills the route table)
from wevoip.web.api import dialplans, tokens, webhooks  # noqa: F401 (issue 5: they fill the route table too)
from wevoip.web.api import live  # noqa: F401 (issue 7: calls in progress)
from wevoip.web.api import siplocks  # noqa: F401 (issue 12: SIP guessing locks)
from wevoip.web.api.auth import authenticate
from wevoip.web.api.errors import RETRY_AFTER, ApiError, from_store
from wevoip.web.api.jsonio import Download, dumps, read_json
from wevoip.web.api.openapi import openapi_document
from wevoip.web.api.routes import ROUTES, Call, Route, Services

MAX_ID = 2**62


def _schema_error(error: jsonschema.ValidationError) -> ApiError:
    if error.validator == "additionalProperties":
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        field = unknown[0] if unknown else ""
        return ApiError(422, "invalid", f"{field}: is not a field here", field=field)
    if error.validator == "required":
        field = re.search(r"'([^']+)'", error.message).group(1)
        return ApiError(422, "invalid", f"{field}: is required", field=field)
    field = ".".join(str(part) for part in error.absolute_path) or "body"
    if error.validator == "pattern" and "description" in error.schema:
        return ApiError(422, "invalid", f"{field}: {error.schema['description']}", field=field)
    return ApiError(422, "invalid", f"{field}: {error.message}", field=field)


class ApiApp:
    def __init__(self, app: Klein, store, services: Services | None = None):
        """Adds the routes to `app`; `store` is the store service, ready or not yet."""
        self.store = store
        self.services = services or Services()
        self.app = app
        self.document = openapi_document(ROUTES)
        for route in ROUTES:
            self._register(route)
        self.app.route("/api/openapi.json", methods=["GET"])(self._openapi)

    def _openapi(self, request) -> bytes:
        request.setHeader(b"Content-Type", b"application/json")
        return dumps(self.document)

    def _register(self, route: Route) -> None:
        path = "/api/v1" + re.sub(r"\{(\w+)\}", r"<int:\1>", route.path)
        validator = jsonschema.Draft202012Validator(route.body) if route.body is not None else None

        async def endpoint(request, **params):
            try:
                status, body = await self._serve(route, validator, request, params)
            except ApiError as error:
                status, body = error.status, error.body
            except StoreError as error:
                api_error = from_store(error)
                status, body = api_error.status, api_error.body
            request.setResponseCode(status)
            if status == 401:
                request.setHeader(b"WWW-Authenticate", b'Bearer realm="wevoip"')
            if status == 503:
                request.setHeader(b"Retry-After", str(body.get("retry_after", RETRY_AFTER)).encode())
            if status == 204:
                return b""
            if isinstance(body, Download):
                request.setHeader(b"Content-Type", body.content_type.encode())
                request.setHeader(b"Content-Disposition", f'attachment; filename="{body.filename}"'.encode())
                return body.content
            request.setHeader(b"Content-Type", b"application/json")
            return dumps(body)

        self.app.route(path, methods=[route.method], endpoint=f"{route.method} {route.path}")(endpoint)

    async def _serve(self, route: Route, validator, request, params: dict[str, int]) -> tuple[int, object]:
        database = self.store.database
        if database is None or not database.running:
            raise ApiError(503, "unavailable", "the store is not ready", retry_after=RETRY_AFTER)
        if any(value < 1 or value > MAX_ID for value in params.values()):
            raise ApiError(404, "not_found", "not found")
        principal = await authenticate(request, database)
        principal.require(route.scope)
        if route.platform_only:
            principal.require_platform()
        if "isp_id" in params:
            principal.check_isp(params["isp_id"])
        if principal.customer_id is not None:
            if not route.customer_ok:
                raise ApiError(403, "forbidden", "a customer token cannot do this")
            await database.transact(self._own_objects, principal, params)
        raw, body = read_json(request)
        if validator is not None:
            if not raw:
                raise ApiError(422, "invalid", "body: send a JSON object ({} when nothing changes)", field="body")
            if not isinstance(body, dict):
                raise ApiError(422, "invalid", "body: must be a JSON object", field="body")
            error = jsonschema.exceptions.best_match(validator.iter_errors(body))
            if error is not None:
                raise _schema_error(error)
        query = {key.decode(): values[0].decode("utf-8", "replace") for key, values in request.args.items()}
        call = Call(principal, database, params, query, body if isinstance(body, dict) else {},
                    services=self.services)
        key = request.getHeader(b"idempotency-key")
        if route.method == "POST" and key is not None:
            return await self._once(route, call, key.decode("utf-8", "replace"), raw, request)
        return route.status, self._shape(route, call, await route.handler(call))

    @staticmethod
    async def _own_objects(tx, principal, params: dict[str, int]) -> None:
        """A customer token meets another customer's objects as missing ones."""
        for name, value in params.items():
            if name == "customer_id" or name in ownership.OWNED:
                principal.check_customer(await ownership.customer_of(tx, params["isp_id"], name, value))

    async def _once(self, route: Route, call: Call, key: str, raw: bytes, request) -> tuple[int, object]:
        if not 1 <= len(key) <= 255:
            raise ApiError(400, "bad_idempotency_key", "Idempotency-Key is 1 to 255 characters")
        fingerprint = hashlib.sha256(request.method + b" " + request.path + b"\n" + raw).digest()
        token_id = call.principal.token_id

        async def replay():
            kept = await call.database.transact(idempotency.find_response, token_id, key)
            if kept is None:
                return None
            if bytes(kept["request_sha256"]) != fingerprint:
                raise ApiError(422, "idempotency_key_reused", "this Idempotency-Key was used for another request")
            return kept["status"], kept["response"]

        earlier = await replay()
        if earlier is not None:
            return earlier

        async def record(tx, result):
            await idempotency.keep_response(tx, token_id, key, fingerprint, route.status,
                                            dumps(self._shape(route, call, result)))
        call.record = record
        try:
            return route.status, self._shape(route, call, await route.handler(call))
        except Conflict as error:
            if error.field != "idempotency_key":
                raise
        return await replay()

    @staticmethod
    def _shape(route: Route, call: Call, result):
        if not route.listing:
            return result
        limit, offset = call.page()
        return {"items": result, "limit": limit, "offset": offset,
                "next_offset": offset + limit if len(result) == limit else None}
