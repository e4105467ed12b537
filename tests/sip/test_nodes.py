"""The nodes table as each node sees it: a node that announces itself (or moves) is known to
the others as soon as its notification arrives; and the address a node announces."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import Clock, deferLater

from wevoip.config import parse_config
from wevoip.sip.access import SipAccess
from wevoip.sip.flow import FlowTable
from wevoip.sip.nodes import Nodes
from wevoip.store.notify import Notifier


async def eventually(check, seconds=5.0):
    for _ in range(int(seconds / 0.02)):
        if check():
            return
        await deferLater(reactor, 0.02, lambda: None)
    raise AssertionError("the other node never heard")


@pytest_twisted.ensureDeferred
async def test_a_node_announcing_itself_is_known_to_the_others(database, dsn):
    notifier = Notifier(reactor, dsn)
    await notifier.start()
    try:
        node_b = Nodes(database)
        await node_b.attach(notifier)
        await node_b.announce("node-b", ("127.0.0.2", 5070))
        assert node_b.address("node-a") is None and node_b.hosts() == {"127.0.0.2"}

        node_a = Nodes(database)
        await node_a.announce("node-a", ("127.0.0.1", 5060))
        assert node_a.address("node-b") == ("127.0.0.2", 5070)       # read at start
        await eventually(lambda: node_b.address("node-a") == ("127.0.0.1", 5060))
        await node_a.announce("node-a", ("::1", 5062))                  # restarted elsewhere
        await eventually(lambda: node_b.address("node-a") == ("::1", 5062))
        assert node_b.hosts() == {"::1", "127.0.0.2"}
    finally:
        notifier.stop()


def access_with(text: str, udp: tuple[str, int] | None) -> SipAccess:
    access = SipAccess(Clock(), parse_config(text, Path(".")), None)
    flows = FlowTable()
    if udp is not None:
        flows.add_datagram_socket(4, udp, lambda data, address: None)
    access.sip = SimpleNamespace(flows=flows)
    return access


@pytest.mark.parametrize("text, udp, address", [
    ("[sip]\nnode_address = '10.0.0.5:5080'\n", ("0.0.0.0", 5060), ("10.0.0.5", 5080)),
    ("", ("192.0.2.3", 5062), ("192.0.2.3", 5062)),
    ("[sip]\nadvertise = '198.51.100.7'\n", ("0.0.0.0", 5060), ("198.51.100.7", 5060)),
    ("[sip]\nadvertise = 'sip.example.net'\n", ("0.0.0.0", 5060), ("127.0.0.1", 5060)),
    ("", None, None),
])
def test_the_address_a_node_announces(text, udp, address):
    assert access_with(text, udp).node_address() == address
