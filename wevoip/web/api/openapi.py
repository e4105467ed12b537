"""The OpenAPI 3 document, made from the route table so that it cannot drift from it."""

from __future__ import annotations

from wevoip.web.api.routes import Route

ERROR = {"type": "object", "required": ["error", "message"],
         "properties": {"error": {"type": "string"}, "message": {"type": "string"},
                        "field": {"type": "string"}, "retry_after": {"type": "integer", "minimum": 1}}}


def _error(description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _operation(route: Route) -> dict:
    parameters = [{"name": name, "in": "path", "required": True,
                   "schema": {"type": "integer", "minimum": 1, "maximum": 2**62}}
                  for name in route.path_params]
    if route.listing:
        parameters += [
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
            {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 10**9}}]
    for entry in route.query:
        name, schema = entry if isinstance(entry, tuple) else (entry, {"type": "integer", "minimum": 1,
                                                                      "maximum": 2**62})
        parameters.append({"name": name, "in": "query", "schema": schema})
    if route.method == "POST":
        parameters.append({"name": "Idempotency-Key", "in": "header",
                           "schema": {"type": "string", "minLength": 1, "maxLength": 255}})
    result = route.returns or {}
    if route.listing:
        result = {"type": "object", "required": ["items", "limit", "offset"],
                  "properties": {"items": {"type": "array", "items": result},
                                 "limit": {"type": "integer"}, "offset": {"type": "integer"},
                                 "next_offset": {"type": ["integer", "null"]}}}
    ok = {"description": "done"} if route.status == 204 else {
        "description": "done", "content": {"application/json": {"schema": result},
                                           **{media: {"schema": {"type": "string"}} for media in route.downloads}}}
    operation = {
        "operationId": route.handler.__name__, "summary": route.summary, "tags": [route.tag],
        "parameters": parameters,
        "responses": {str(route.status): ok, "400": _error("malformed request"),
                      "401": _error("no valid token"), "403": _error("scope or role missing"),
                      "404": _error("no such object for this ISP"), "409": _error("taken or limit reached"),
                      "413": _error("body too large"), "415": _error("not JSON"),
                      "422": _error("a field is invalid"),
                      "503": {**_error("the database cannot answer now; try again after Retry-After seconds"),
                              "headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}}}},
    }
    if route.body is not None:
        operation["requestBody"] = {"required": True,
                                    "content": {"application/json": {"schema": route.body}}}
    return operation


def openapi_document(routes: list[Route]) -> dict:
    paths: dict[str, dict] = {}
    for route in routes:
        paths.setdefault("/api/v1" + route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {"title": "WeVoIP API", "version": "1",
                 "description": "Provision ISPs, customers, PBXs, subscribers, carriers and numbers."},
        "paths": paths,
        "components": {"schemas": {"Error": ERROR},
                       "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}}},
        "security": [{"token": []}],
    }
