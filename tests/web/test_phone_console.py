"""
Done-means of the phone console and the WebRTC gateway: a real node (SIP on every
transport), Debian's headless Chromium driven by Playwright with a fake microphone playing
a 440 Hz tone, and a SIP phone played by baresip (playing 1000 Hz).

    browser calls phone: the page logs in, registers over WSS, dials the phone; the phone's
                         recording holds the tone; the phone hangs up; the page says ended.
    phone calls browser: the page rings and answers; the gateway's media state is on the page.
    browser calls browser: two pages (two subscribers) call each other.
    two tabs of one subscriber: the phone calls; both ring, each with its own browser leg;
                         the second answers and has the media; the first stops ringing;
                         every port comes back. Then that tab is closed without hanging
                         up: its ICE consent lapses (8 s in this node's config) and the
                         phone gets a BYE, the CDR saying the system ended the call.

While the browser talks to the phone, the API and the tenant console list the call with the
gateway's ICE, DTLS and SRTP state and counters that go up, to its ISP and customer only;
once it ends its record says the media went both ways.

Any error in a page's console fails the test; the phone page is screenshotted into
test-artifacts/screenshots/. One node and one Chromium serve the whole module; Playwright's
sync API runs on a worker thread of its own, so the reactor stays free for the node's
children.
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, threads
from twisted.internet.task import deferLater
from twisted.python.threadpool import ThreadPool

from tests.calls.test_phones_call import DOMAIN, EXTRA, NAMESPACE, PASSWORD, Baresip, frequency, subscriber, until
from tests.node import ROOT, Node, node_for_module, ssh_eval
from tests.pg import reachable_tmpdir
from tests.store.builders import build_tree, held
from tests.web.conftest import Api
from tests.web.consolepeople import log_in
from wevoip.credentials import hash_password
from wevoip.store import customers, subscribers, webusers
from wevoip.store.admins import create_api_token

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "test-artifacts" / "screenshots"
WEB_PASSWORD = "phone-console-web-1"
BROWSERS = {"ann": "110", "cat": "111"}      # subscribers on the phone console, and their extensions
CONSENT_MS = 8000       # short, so that a closed tab ends its call soon; Chromium checks every 2.5 s or so


class Console:
    """The Chromium of the module and one tab per subscriber, all on one worker thread."""

    def __init__(self, base: str, tone: str):
        self.base, self.tone = base, tone
        self.pool = ThreadPool(1, 1, "playwright")
        self.pool.start()
        self.errors: list[str] = []
        self.pages = {}

    def run(self, function, *args):
        return threads.deferToThreadPool(reactor, self.pool, function, *args)

    def launch(self) -> None:
        from playwright.sync_api import sync_playwright
        self.playwright = sync_playwright().start()
        self.browser = self.playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run",
            "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-audio-capture={self.tone}", "--allow-loopback-in-peer-connection",
            "--ignore-certificate-errors"])

    def login(self, user: str, key: str | None = None) -> None:
        """A tab of its own (own browser context) for `user`, known as `key` (the user's name by default)."""
        context = self.browser.new_context(ignore_https_errors=True)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.on("console", lambda message: message.type == "error" and self.errors.append(
            f"{user} {page.url}: {message.text}"))
        page.on("pageerror", lambda error: self.errors.append(f"{user} {page.url}: {error}"))
        page.goto(self.base + "/login/subscriber")
        page.fill('[name="domain"]', DOMAIN)
        page.fill('[name="username"]', user)
        page.fill('[name="password"]', WEB_PASSWORD)
        with page.expect_navigation():
            page.get_by_role("button", name="Log in", exact=True).click()
        response = page.goto(self.base + "/phone")
        assert response.status == 200, page.content()[:2000]
        page.fill("#sip-password", PASSWORD)
        page.click("#connect")
        page.locator("#registration").filter(has_text=re.compile("^registered$")).wait_for()
        self.pages[key or user] = page

    def text(self, user: str, selector: str) -> str:
        return self.pages[user].text_content(selector)

    def click(self, user: str, selector: str) -> None:
        self.pages[user].click(selector)

    def dial(self, user: str, number: str) -> None:
        self.pages[user].fill("#number", number)
        self.pages[user].click("#call")

    def close_tab(self, user: str) -> None:
        """Gone without a word: no BYE, no unregistration (what a crashed or killed tab does)."""
        self.pages.pop(user).close()

    def shot(self, user: str, name: str) -> None:
        self.pages[user].screenshot(path=str(SHOTS / f"phone-{name}.png"), full_page=True)

    def close(self) -> None:
        self.browser.close()
        self.playwright.stop()


class Running:
    def __init__(self, node, database, folder, console, phone, tree, tokens):
        self.node, self.database, self.folder, self.console, self.phone = node, database, folder, console, phone
        self.tree, self.tokens = tree, tokens
        self.base = f"http://127.0.0.1:{node.web_port}"

    async def page_says(self, user: str, selector: str, wanted: str, timeout: float = 20.0) -> str:
        async def says():
            text = await self.console.run(self.console.text, user, selector)
            return text if wanted in text else None
        return await until(says, lambda: f"{user}'s {selector} to say {wanted!r}\n{self.node.output.text[-3000:]}",
                           timeout)

    async def active_calls(self):
        return await self.database.fetch("select * from active_calls")

    async def node_says(self, line: str) -> str:
        """What `print(...)` shows in the node's manhole (its `gateway`, `media`, ...)."""
        _, text = await ssh_eval(self.node.manhole_port, self.folder / "admin_key", line)
        return text


async def _start():
    folder = reachable_tmpdir("wevoip-test-phone-")
    node = Node(folder, sip=True)
    node.config_path.write_text(node.config_path.read_text()
                                + EXTRA.replace("46000", "46400").replace("46199", "46599")
                                .replace("[media]\n", f"[media]\nwebrtc_consent_timeout_ms = {CONSENT_MS}\n"))
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / "admin_key")], check=True)
    (folder / "authorized_keys").write_text((folder / "admin_key.pub").read_text())
    health = await node.start_ready()
    from wevoip.store.database import Database
    database = Database(reactor, node.dsn, size=2)
    await database.connect()
    tree = await build_tree(database, NAMESPACE)
    web_hash = await hash_password(reactor, WEB_PASSWORD)

    async def more(tx):
        isp_id, tenant_id = tree.isp["id"], tree.tenant["id"]
        await held(tx, isp_id, tenant_id, "+15550100101")
        await subscribers.create_subscriber(tx, isp_id, tenant_id, username="bob", password=PASSWORD,
                                            extension="101", e164="+15550100101")
        for user, extension in BROWSERS.items():
            await subscribers.create_subscriber(tx, isp_id, tenant_id, username=user, password=PASSWORD,
                                                extension=extension, web_username=user, web_password_hash=web_hash)
        await webusers.create_customer_admin(tx, isp_id, tree.customer["id"], email=f"it@{NAMESPACE}",
                                             password_hash=web_hash)
        await create_api_token(tx, "i" * 40, isp_id=isp_id)
        await create_api_token(tx, "c" * 40, isp_id=isp_id, customer_id=tree.customer["id"])
        await create_api_token(tx, "o" * 40, isp_id=other.isp["id"])
        neighbour = await customers.create_customer(tx, isp_id, name="Neighbour", status="ACTIVE")
        await create_api_token(tx, "n" * 40, isp_id=isp_id, customer_id=neighbour["id"])
    other = await build_tree(database, "other-" + NAMESPACE)
    await database.transact(more)
    for hertz in (440, 1000):
        subprocess.run(["sox", "-n", "-r", "48000" if hertz == 440 else "8000", "-c", "1", "-b", "16",
                        str(folder / f"{hertz}.wav"), "synth", "60", "sine", str(hertz), "vol", "0.5"], check=True)
    SHOTS.mkdir(parents=True, exist_ok=True)
    console = Console(f"http://127.0.0.1:{node.web_port}", str(folder / "440.wav"))
    await console.run(console.launch)
    for user in BROWSERS:
        await console.run(console.login, user)
    phone = Baresip(folder / "bob", "bob", subscriber("bob", Node.sip_port(health, "udp")),
                    source=f"aufile,{folder / '1000.wav'}")
    phone.start()
    return Running(node, database, folder, console, phone, tree, {"isp": "i" * 40, "customer": "c" * 40,
                                                                 "other isp": "o" * 40, "neighbour": "n" * 40})


@pytest.fixture(scope="module")
def running():
    made = node_for_module(_start)
    state = next(made)
    yield state
    pytest_twisted.blockon(defer.ensureDeferred(state.phone.stop()))
    pytest_twisted.blockon(state.console.run(state.console.close))
    state.console.pool.stop()
    next(made, None)
    assert state.console.errors == []


async def _registered(running):
    rows = await running.database.fetch(
        "select b.* from registrations b join subscribers s on s.id = b.subscriber_id where s.username = 'bob'")
    return rows


async def _idle(running):
    await until(lambda: _no_calls(running), "the call to end everywhere")


async def _no_calls(running):
    return not await running.active_calls()


@pytest_twisted.ensureDeferred
async def test_the_page_registers_over_wss_with_a_contact_that_says_transport_ws(running):
    """RFC 7118 §5.2: JsSIP as the page configures it names its Contact transport=ws over WSS."""
    rows = await running.database.fetch(
        "select b.contact, b.transport from registrations b join subscribers s on s.id = b.subscriber_id"
        " where s.username in ('ann', 'cat')")
    assert len(rows) == 2 and all(row["transport"] == "wss" for row in rows), rows
    assert all(row["contact"].endswith(";transport=ws") for row in rows), rows


@pytest_twisted.ensureDeferred
async def test_the_browser_calls_a_phone_which_hears_the_tone_and_hangs_up(running):
    console, phone = running.console, running.phone
    await until(lambda: _registered(running), lambda: f"bob to register:\n{phone.output}")
    recordings = len(phone.recordings())
    await console.run(console.dial, "ann", "101")
    await running.page_says("ann", "#call-state", "in call")
    await deferLater(reactor, 3, lambda: None)      # the tone flows for a while
    await running.page_says("ann", "#media-dtls", "connected")
    await console.run(console.shot, "ann", "in-call")
    sent = int(await console.run(console.text, "ann", "#media-sent"))
    received = int(await console.run(console.text, "ann", "#media-received"))
    assert sent > 50 and received > 50, (sent, received)
    await _the_call_is_visible_to_its_owners_only(running)
    await phone.command("hangup")
    await running.page_says("ann", "#call-state", "ended")
    await console.run(console.shot, "ann", "ended")
    await _idle(running)
    assert len(phone.recordings()) > recordings
    assert abs(await frequency(phone.recordings()[-1]) - 440) < 30       # the browser's tone reached the phone
    [cdr] = await running.database.fetch("select * from cdrs order by id desc limit 1")
    assert (cdr["callee_dialled"], cdr["media_flow"], cdr["one_way_media"]) == ("101", "both", False)


async def _the_call_is_visible_to_its_owners_only(running):
    api, tokens, isp_id = Api(running.base), running.tokens, running.tree.isp["id"]
    path = f"/api/v1/isps/{isp_id}/webrtc-calls"
    code, listed, _ = await api.call("GET", path, tokens["isp"])
    assert code == 200, listed
    [call] = listed["items"]
    assert (call["direction"], call["dialled"], call["tenant_id"]) == ("internal", "101", running.tree.tenant["id"])
    assert call["answered_at"] and len(call["call_ids"]) == 2 and not call["one_way"]
    [leg] = call["legs"]
    assert leg["side"] == "caller" and leg["ice"]["state"] == "nominated" and leg["ice"]["consent"]
    assert leg["dtls"]["state"] == "connected" and leg["dtls"]["handshake_done"] and leg["dtls"]["cipher"]
    assert leg["srtp"]["active"] and leg["srtp"]["profile"].startswith("SRTP_")
    await deferLater(reactor, 1, lambda: None)
    code, again, _ = await api.call("GET", path, tokens["customer"])
    [later] = again["items"][0]["legs"]
    for direction in ("from_browser", "to_browser"):
        assert later[direction]["packets"] > leg[direction]["packets"] > 25, (direction, leg, later)
        assert later[direction]["octets"] > leg[direction]["octets"]
    for direction in ("to_relay", "from_relay"):
        assert later["plain"][direction]["packets"] > leg["plain"][direction]["packets"] > 25
    code, none, _ = await api.call("GET", f"{path}?tenant_id={running.tree.tenant['id'] + 1000}", tokens["isp"])
    assert (code, none["items"]) == (200, [])
    code, refused, _ = await api.call("GET", path, tokens["other isp"])
    assert code == 404, refused
    code, theirs, _ = await api.call("GET", f"{path}?customer_id={call['customer_id']}", tokens["neighbour"])
    assert (code, theirs["items"]) == (200, []), "another customer of the ISP sees none of it"
    admin = await log_in(running, "/login/customer", {"namespace": NAMESPACE, "email": f"it@{NAMESPACE}"},
                         password=WEB_PASSWORD)
    page = await admin.get(f"/tenants/{running.tree.tenant['id']}/webrtc")
    assert page.code == 200 and page.text.count("<tr>") == 2, page.text
    cells = re.findall(r"<td>(.*?)</td>", page.text.split("<tbody>")[-1], re.S)
    assert cells[:3] == [f"ann@{DOMAIN} → 101", cells[1], "caller"], cells
    assert cells[3].startswith(f"nominated {leg['ice']['nominated']}") and "connected (client)" in cells[4], cells
    assert cells[5].startswith("SRTP_") and cells[-1] == "no", cells


@pytest_twisted.ensureDeferred
async def test_the_phone_calls_the_browser_which_answers(running):
    console, phone = running.console, running.phone
    await until(lambda: _registered(running), lambda: f"bob to register:\n{phone.output}")
    await phone.command("dial", f"sip:110@{DOMAIN}")
    await running.page_says("ann", "#call-state", "incoming call")
    await console.run(console.shot, "ann", "ringing")
    await console.run(console.click, "ann", "#answer")
    await running.page_says("ann", "#call-state", "in call")
    await running.page_says("ann", "#media-srtp", "AES")
    await deferLater(reactor, 2, lambda: None)
    await console.run(console.click, "ann", "#hold")
    await running.page_says("ann", "#call-state", "on hold")
    await console.run(console.click, "ann", "#hold")
    await running.page_says("ann", "#call-state", "in call")
    await console.run(console.click, "ann", "#hangup")
    await running.page_says("ann", "#call-state", "ended")
    await _idle(running)


@pytest_twisted.ensureDeferred
async def test_two_browsers_call_each_other(running):
    console = running.console
    await console.run(console.dial, "ann", BROWSERS["cat"])
    await running.page_says("cat", "#call-state", "incoming call")
    await console.run(console.click, "cat", "#answer")
    await running.page_says("ann", "#call-state", "in call")
    await running.page_says("cat", "#call-state", "in call")

    async def both_ways():
        counts = [int(await console.run(console.text, user, selector)) for user in BROWSERS
                  for selector in ("#media-sent", "#media-received")]
        return all(count > 50 for count in counts)
    await until(both_ways, "media both ways on both pages")
    await console.run(console.shot, "cat", "browser-to-browser")
    await console.run(console.click, "cat", "#hangup")
    await running.page_says("ann", "#call-state", "ended")
    await _idle(running)


FORKS = ("print('FORKS', __import__('json').dumps([sorted((b.local.port, b.local.ice_ufrag, str(b.local.fingerprint))"
         " for b in s.forks.values()) for s in gateway.sessions.values()]), 'FREE', media.pool.available, 'END')")


def _forks(text: str) -> tuple[list, int]:
    """The ringing browser forks of each call in progress (port, ufrag, fingerprint), and free port pairs."""
    forks, free = re.findall(r"FORKS (.*) FREE (\d+) END", text)[-1]
    return json.loads(forks), int(free)


@pytest_twisted.ensureDeferred
async def test_two_tabs_ring_the_second_answers_then_closing_it_ends_the_call_by_consent(running):
    console, phone = running.console, running.phone
    await until(lambda: _registered(running), lambda: f"bob to register:\n{phone.output}")
    await console.run(console.login, "ann", "ann-2")
    _, idle_free = _forks(await running.node_says(FORKS))
    await phone.command("dial", f"sip:110@{DOMAIN}")
    for tab in ("ann", "ann-2"):
        await running.page_says(tab, "#call-state", "incoming call")
    (forks,), ringing_free = _forks(await running.node_says(FORKS))
    assert len(forks) == 2 and forks[0][:2] != forks[1][:2]          # own port, own ICE ufrag
    assert forks[0][1] != forks[1][1] and forks[0][2] == forks[1][2]  # one node certificate
    assert ringing_free == idle_free - 6      # the relay's two pairs, and two for each tab's leg

    await console.run(console.click, "ann-2", "#answer")
    await running.page_says("ann-2", "#call-state", "in call")
    await running.page_says("ann", "#call-state", "ended")          # the first tab stopped ringing

    async def media_both_ways():
        counts = [int(await console.run(console.text, "ann-2", selector))
                  for selector in ("#media-sent", "#media-received")]
        return all(count > 50 for count in counts)
    await until(media_both_ways, "media both ways in the second tab")
    (forks,), answered_free = _forks(await running.node_says(FORKS))
    assert forks == [] and answered_free == idle_free - 4      # the first tab's leg is back in the pool

    byes = phone.output.count("terminated")

    async def hung_up():
        return phone.output.count("terminated") > byes
    await console.run(console.close_tab, "ann-2")
    await until(hung_up, lambda: f"the phone to be hung up:\n{phone.output[-2000:]}\n{running.node.output.text[-3000:]}",
                CONSENT_MS / 1000 + 15)
    await _idle(running)
    assert "ICE consent of the browser on leg b expired" in running.node.output.text
    cdr = (await running.database.fetch("select * from cdrs order by id desc limit 1"))[0]
    assert (cdr["disposition"], cdr["hangup_by"]) == ("answered", "system")
    _, free = _forks(await running.node_says(FORKS))
    assert free == idle_free
