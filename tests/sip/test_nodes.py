"""The nodes table as each node sees it: a node that announces itself (or moves) is known to
the others as soon as its notification arrives."""

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater

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
