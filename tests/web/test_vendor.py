"""JsSIP from npm: pinned by the lock, bundled by the bootstrap, served at a stable URL."""

import json
import shutil
from pathlib import Path

import pytest
import pytest_twisted
import treq
from klein import Klein
from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.web.server import Site

from wevoip.config import Config
from wevoip.web.root import build_web_app
from wevoip.web.vendor import PHONE_BUILD, add_vendor_routes

PHONE = PHONE_BUILD.parent


class NoStore:
    database = None


async def no_health():
    return {"status": "ok"}


async def serve(app):
    port = reactor.listenTCP(0, Site(app.resource()), interface="127.0.0.1")
    return port, f"http://127.0.0.1:{port.getHost().port}"


def test_jssip_is_pinned_exactly_and_the_lock_names_no_registry():
    wanted = json.loads((PHONE / "package.json").read_text())["dependencies"]["jssip"]
    assert wanted[0].isdigit(), "pin an exact version, not a range"
    lock = json.loads((PHONE / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/jssip"]["version"] == wanted
    bundler = json.loads((PHONE / "package.json").read_text())["devDependencies"]["esbuild"]
    assert lock["packages"]["node_modules/esbuild"]["version"] == bundler
    assert all("resolved" not in entry for entry in lock["packages"].values())
    installed = json.loads((PHONE / "node_modules" / "jssip" / "package.json").read_text())
    assert installed["version"] == wanted


@pytest_twisted.ensureDeferred
async def test_the_installed_browser_build_is_served():
    port, base = await serve(build_web_app(NoStore(), no_health, Config(), reactor))
    try:
        response = await treq.get(f"{base}/static/vendor/jssip.min.js")
        body = await response.content()
        assert response.code == 200
        assert response.headers.getRawHeaders("Content-Type") == ["text/javascript; charset=utf-8"]
        assert response.headers.getRawHeaders("Cache-Control") == ["no-cache"]
        assert body == (PHONE_BUILD / "jssip.min.js").read_bytes()
        assert b"var JsSIP=" in body[:200]
        unknown = await treq.get(f"{base}/static/vendor/../../config.py")
        assert unknown.code == 404
        other = await treq.get(f"{base}/static/vendor/jquery.js")
        assert other.code == 404 and (await other.json())["error"] == "not_found"
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_a_missing_install_says_how_to_fix_it(tmp_path: Path):
    app = Klein()
    add_vendor_routes(app, tmp_path / "build")
    port, base = await serve(app)
    try:
        response = await treq.get(f"{base}/static/vendor/jssip.min.js")
        body = await response.json()
        assert response.code == 503
        assert body["error"] == "not_installed" and "npm run build" in body["message"]
    finally:
        await port.stopListening()


@pytest.mark.skipif(shutil.which("chromium") is None, reason="bin/test installs Debian's chromium")
@pytest_twisted.ensureDeferred
async def test_chromium_loads_the_served_jssip(tmp_path: Path):
    """The served file is a browser build: a page loading it finds the JsSIP global and its UA."""
    app = build_web_app(NoStore(), no_health, Config(), reactor)

    @app.route("/jssip-check")
    def check(request):
        return (b'<!doctype html><body><script src="/static/vendor/jssip.min.js"></script>'
                b'<script>document.body.textContent = "loaded " + JsSIP.version + " " + typeof JsSIP.UA;'
                b'</script></body>')

    port, base = await serve(app)
    try:
        dom, _, _ = await getProcessOutputAndValue(
            shutil.which("chromium"),
            ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", f"{base}/jssip-check"],
            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}, reactor=reactor)
    finally:
        await port.stopListening()
    wanted = json.loads((PHONE / "package.json").read_text())["dependencies"]["jssip"]
    assert f"loaded {wanted} function".encode() in dom
