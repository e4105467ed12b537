"""
WeHostVoIP's getting-started flow through the API alone, with treq, against a real node
(`twistd wevoip` in a child process): ISP, its token, a plan, a customer activated, a
carrier and gateway, a dialplan preset, a DID range, a tenant under the namespace, the
pilot subscriber, a DID routed to it; the carrier's card, the plan's pricing and a
payment; then a real SIP phone (baresip) registers with the subscriber's credentials and
calls out through the gateway (another baresip answering as the carrier), and the call
shows in the API's CDRs and ledger. Then the node's webhook drainer delivers a signed
event to a receiver on loopback.
"""

import shutil
import socket
from decimal import Decimal

import pytest
import pytest_twisted
from twisted.internet.utils import getProcessOutputAndValue

from tests.calls.test_phones_call import EXTRA, Baresip, until
from tests.node import Node, free_port
from tests.pg import reachable_tmpdir
from tests.web.conftest import Api
from tests.web.flows import onboard
from tests.webhook_receiver import WebhookReceiver

PLATFORM = "platform-token-for-the-getting-started-flow"
DOMAIN = "acme.kages.example.net"
CARRIER_HOST = "127.0.0.3"
DIALLED = "6175550123"
GATEWAY_DIGITS = "0016175550123"      # +16175550123 with one character stripped and 00 put in front


@pytest.fixture
def folder():
    path = reachable_tmpdir("wevoip-test-flow-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow
@pytest_twisted.ensureDeferred
async def test_the_getting_started_flow_through_the_api_of_a_running_node(folder):
    node = Node(folder, env={"WEVOIP_ADMIN_TOKEN": PLATFORM}, sip=True)
    node.config_path.write_text(node.default_config(sip=True) + EXTRA)
    node.start()
    receiver = WebhookReceiver()
    try:
        await node.wait_ready()
        api = Api(f"http://127.0.0.1:{node.web_port}")
        made = await onboard(api, "kages.example.net", platform_token=PLATFORM)
        base, token = made["base"], made["token"]
        assert made["tenant"]["sip_domain"] == "acme.kages.example.net"
        assert made["did"]["subscriber_username"] == "alice" and made["did"]["tenant_name"] == "Acme HQ"
        code, result, _ = await api.call("POST", f"{base}/dialplan/translate", token, json={
            "dialled": "2125551234", "subscriber_id": made["subscriber"]["id"]})
        assert result["e164"] == "+12125551234"
        await _price_and_fund(api, made)
        gateway_port = free_port(socket.SOCK_DGRAM)
        code, gateway, _ = await api.call("PATCH", f"{base}/gateways/{made['gateway']['id']}", token, json={
            "host": CARRIER_HOST, "port": gateway_port})
        assert code == 200, gateway
        await _call_out(api, made, node, folder, gateway_port)

        code, hook, _ = await api.call("PUT", f"{base}/webhook", token, json={"url": receiver.url})
        receiver.secret = hook["secret"]
        arrived = receiver.next_event(timeout=30)
        code, queued, _ = await api.call("POST", f"{base}/webhook/ping", token)
        assert code == 202
        await arrived
        [event] = receiver.events
        assert event["event"] == "webhook.ping" and event["body"]["id"] == queued["id"]
        code, deliveries, _ = await api.call("GET", f"{base}/webhook/deliveries", token)
        assert deliveries["items"][0]["attempts"] == 1
    finally:
        await receiver.close()
        await node.stop()


async def _price_and_fund(api, made):
    """The carrier's card (North America at 0.01 a started minute), the plan selling at cost,
    and five dollars on the prepaid account: all through the API."""
    base, token = made["base"], made["token"]
    code, _, _ = await api.call("PUT", f"{base}/billing", token, json={"home_prefix": "1"})
    assert code == 200
    code, deck, _ = await api.call("POST", f"{base}/rate-decks", token, json={
        "name": "Carrier One card", "kind": "carrier", "carrier_id": made["carrier"]["id"]})
    assert code == 201, deck
    code, draft, _ = await api.call("POST", f"{base}/rate-decks/{deck['id']}/drafts", token, json={
        "csv": "prefix,description,cost,connection_fee,increment\n1,North America,0.0100,0,60/60\n"})
    assert code == 201, draft
    code, published, _ = await api.call("POST", f"{base}/rate-deck-versions/{draft['id']}/publish", token,
                                        json={"effective_at": "2026-01-01T00:00:00Z"})
    assert code == 200, published
    code, priced, _ = await api.call("PUT", f"{base}/service-plans/{made['plan']['id']}/pricing", token,
                                     json={"service_deck": True})
    assert code == 200, priced
    code, paid, _ = await api.call("POST", f"{base}/customers/{made['customer']['id']}/payments", token,
                                   json={"amount": "5.00", "description": "first top-up"})
    assert code == 201 and paid["balance_after"] == "5.000000", paid


async def _call_out(api, made, node, folder, gateway_port):
    """alice's phone registers with the API-made credentials and calls out through the gateway."""
    base, token = made["base"], made["token"]
    sip_port = Node.sip_port((await node.health())[1], "udp")
    for hertz in (1000, 440):
        await getProcessOutputAndValue("/usr/bin/sox", ["-n", "-r", "8000", "-c", "1", "-b", "16",
                                                        str(folder / f"{hertz}.wav"), "synth", "30", "sine", str(hertz)])
    alice = Baresip(folder / "alice", "alice",
                    f'<sip:alice@{DOMAIN}>;auth_pass=correct-horse-9;outbound="sip:127.0.0.1:{sip_port};'
                    f'transport=udp";regint=600;answermode=auto;audio_codecs=PCMU',
                    source=f"aufile,{folder / '1000.wav'}")
    gateway = Baresip(folder / "gateway", GATEWAY_DIGITS,
                      f"<sip:{GATEWAY_DIGITS}@{CARRIER_HOST}>;regint=0;answermode=auto;audio_codecs=PCMU",
                      source=f"aufile,{folder / '440.wav'}", host=CARRIER_HOST, sip_port=gateway_port)
    for phone in (alice, gateway):
        phone.start()
    try:
        async def registered():
            code, rows, _ = await api.call("GET", f"{base}/tenants/{made['tenant']['id']}/registrations", token)
            return code == 200 and [row for row in rows["items"] if row["source"].startswith("127.0.0.1:")]
        await until(registered, lambda: f"alice to register:\n{alice.output}")
        await alice.command("dial", DIALLED)

        async def established():
            return "Call established" in alice.output and "Call established" in gateway.output
        await until(established, lambda: f"the call to be answered\n{alice.output}\n{gateway.output}\n"
                                         f"{node.output.text[-3000:]}", timeout=30)
        assert f"INVITE sip:{GATEWAY_DIGITS}@{CARRIER_HOST}:{gateway_port}" in gateway.output
        await alice.command("hangup")

        async def recorded():
            code, cdrs, _ = await api.call("GET", f"{base}/cdrs", token)
            return code == 200 and cdrs["items"]
        [cdr] = await until(recorded, lambda: f"the call record\n{node.output.text[-3000:]}")
        await _call_the_echo_test(api, made, node, alice)
    finally:
        for phone in (alice, gateway):
            await phone.stop()
    assert (cdr["direction"], cdr["disposition"], cdr["callee_e164"], Decimal(cdr["price"])) == (
        "outbound", "answered", "+16175550123", Decimal("0.01"))
    code, ledger, _ = await api.call("GET", f"{base}/customers/{made['customer']['id']}/ledger", token)
    charges = [row for row in ledger["items"] if row["cdr_id"] == cdr["id"]]
    assert [Decimal(row["amount"]) for row in charges] == [Decimal("-0.01")]


async def _call_the_echo_test(api, made, node, alice):
    """Issue 12, point 5: the node's API refuses a DID route to a feature no installed plugin
    serves, and accepts one its call applications serve, which then answers a real call."""
    base, token = made["base"], made["token"]
    code, free, _ = await api.call("GET", f"{base}/dids?state=free", token)
    did = free["items"][0]
    code, _, _ = await api.call("POST", f"{base}/dids/{did['id']}/allocate", token,
                                json={"tenant_id": made["tenant"]["id"]})
    assert code == 200
    for feature in ("voicemail:100", "ivr:main"):
        code, error, _ = await api.call("POST", f"{base}/dids/{did['id']}/route", token, json={"feature": feature})
        assert (code, error["field"]) == (422, "feature") and "no installed call application" in error["message"]
    code, routed, _ = await api.call("POST", f"{base}/dids/{did['id']}/route", token, json={"feature": "echo"})
    assert code == 200 and routed["feature"] == "echo"
    await alice.command("dial", f"sip:{did['e164']}@{DOMAIN}")

    async def answered():
        return alice.output.count("Call established") >= 2
    await until(answered, lambda: f"the echo test to answer\n{alice.output}\n{node.output.text[-3000:]}")
    await alice.command("hangup")

    async def recorded():
        code, cdrs, _ = await api.call("GET", f"{base}/cdrs", token)
        return [row for row in cdrs["items"] if row["callee_e164"] == did["e164"]]
    [echo] = await until(recorded, lambda: f"the echo call's record\n{node.output.text[-3000:]}")
    assert (echo["direction"], echo["disposition"]) == ("internal", "answered")
