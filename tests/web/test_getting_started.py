"""
WeHostVoIP's getting-started flow through the API alone, with treq, against a real node
(`twistd wevoip` in a child process): ISP, its token, a plan, a customer activated, a
carrier and gateway, a dialplan preset, a DID range, a tenant under the namespace, the
pilot subscriber, a DID routed to it. Then the node's webhook drainer delivers a signed
event to a receiver on loopback. (The SIP phone part comes with the SIP stack.)
"""

import shutil

import pytest
import pytest_twisted

from tests.node import Node
from tests.pg import reachable_tmpdir
from tests.web.conftest import Api
from tests.web.flows import onboard
from tests.webhook_receiver import WebhookReceiver

PLATFORM = "platform-token-for-the-getting-started-flow"


@pytest.fixture
def folder():
    path = reachable_tmpdir("wevoip-test-flow-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow
@pytest_twisted.ensureDeferred
async def test_the_getting_started_flow_through_the_api_of_a_running_node(folder):
    node = Node(folder, env={"WEVOIP_ADMIN_TOKEN": PLATFORM})
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
