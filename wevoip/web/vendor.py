"""
Browser libraries from npm, served from where the bootstrap's `npm ci` put them.

They are pinned by wevoip/web/phone/package-lock.json and never copied into the
repository; the URL stays the same across upgrades, so browsers are told to revalidate
(Last-Modified) rather than to cache blindly.
"""

from __future__ import annotations

import json
from pathlib import Path

from klein import Klein
from twisted.web.static import File

PHONE_MODULES = Path(__file__).resolve().parent / "phone" / "node_modules"

# URL name under /static/vendor/ -> file inside node_modules.
VENDOR_FILES = {
    "jssip.min.js": Path("jssip") / "dist" / "jssip.min.js",
}


def add_vendor_routes(app: Klein, modules: Path = PHONE_MODULES) -> None:
    @app.route("/static/vendor/<name>", methods=["GET", "HEAD"])
    def vendor(request, name: str):
        relative = VENDOR_FILES.get(name)
        if relative is None:
            request.setResponseCode(404)
            request.setHeader(b"Content-Type", b"application/json")
            return json.dumps({"error": "not_found",
                               "message": f"no vendored file {name!r}"}).encode()
        path = modules / relative
        if not path.is_file():
            request.setResponseCode(503)
            request.setHeader(b"Content-Type", b"application/json")
            return json.dumps({"error": "not_installed",
                               "message": f"{relative} is missing: run npm ci in {modules.parent}"
                                          " (bin/wevoip does it when npm is present)"}).encode()
        request.setHeader(b"Cache-Control", b"no-cache")
        resource = File(str(path))
        resource.contentTypes = {".js": "text/javascript; charset=utf-8"}
        return resource
