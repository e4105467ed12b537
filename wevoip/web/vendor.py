"""
Browser libraries from npm, served from where the bootstrap built them.

JsSIP and the esbuild that bundles it are pinned by wevoip/web/phone/package-lock.json;
`npm ci` and `npm run build` (bin/lib/bootstrap.sh) write the browser bundle to
wevoip/web/phone/build/, which is not in the repository. The URL stays the same across
upgrades, so browsers are told to revalidate (Last-Modified) rather than to cache blindly.
"""

from __future__ import annotations

import json
from pathlib import Path

from klein import Klein
from twisted.web.static import File

PHONE_BUILD = Path(__file__).resolve().parent / "phone" / "build"

# URL name under /static/vendor/ -> file inside the build folder.
VENDOR_FILES = {
    "jssip.min.js": Path("jssip.min.js"),
}


def add_vendor_routes(app: Klein, build: Path = PHONE_BUILD) -> None:
    @app.route("/static/vendor/<name>", methods=["GET", "HEAD"])
    def vendor(request, name: str):
        relative = VENDOR_FILES.get(name)
        if relative is None:
            request.setResponseCode(404)
            request.setHeader(b"Content-Type", b"application/json")
            return json.dumps({"error": "not_found",
                               "message": f"no vendored file {name!r}"}).encode()
        path = build / relative
        if not path.is_file():
            request.setResponseCode(503)
            request.setHeader(b"Content-Type", b"application/json")
            return json.dumps({"error": "not_installed",
                               "message": f"{relative} is missing: run npm ci and npm run build in "
                                          f"{build.parent} (bin/wevoip does both when npm is present)"}).encode()
        request.setHeader(b"Cache-Control", b"no-cache")
        resource = File(str(path))
        resource.contentTypes = {".js": "text/javascript; charset=utf-8"}
        return resource
