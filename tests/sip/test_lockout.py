"""
A distributed password guess locks the user to its known addresses (issue 12 point 13):
the authenticator, the defence and the locks on a task.Clock, against the real store and
its notifications (a second node's view).
"""

import json
import re

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import Clock, deferLater

from tests.store.builders import build_tree
from wevoip.credentials import sip_ha1s
from wevoip.sip.auth import Asked, Authenticator
from wevoip.sip.defence import Defence, DefencePolicy
from wevoip.sip.digest import DigestAuthority, digest_response
from wevoip.sip.directory import Directory
from wevoip.sip.lockout import UserLocks
from wevoip.store import siplocks, subscribers
from wevoip.store.notify import EVERYTHING, Notifier

PASSWORD = "correct-horse-9"
DOMAIN = "acme.lock.example.net"
HOME = "198.51.100.7"          # where alice's phone registered from last week
PHONE = "192.0.2.44"           # where alice's phone is registered now


class World:
    def __init__(self, database, tree, clock, live):
        self.database, self.tree, self.clock, self.live = database, tree, clock, live
        secret = b"L" * 32
        self.locks = UserLocks(clock, database, lock_seconds=600, known_days=30,
                               sources_of=lambda subscriber_id: live.get(subscriber_id, []))
        self.defence = Defence(clock, DefencePolicy(ban_after_failures=5, ban_after_user_failures=20))
        self.authenticator = Authenticator(DigestAuthority(clock, secret), Directory(database, secret),
                                           self.defence, self.locks)

    async def attempt(self, source, password=PASSWORD, method="REGISTER"):
        asked = dict(method=method, request_host=DOMAIN, from_user="alice", from_host=DOMAIN, to_user="alice",
                     to_host=DOMAIN, source=source)
        challenge = await self.authenticator.authenticate(Asked(authorization=(), **asked))
        value = challenge.headers[0][1]
        nonce = re.search(r'nonce="([^"]+)"', value).group(1)
        ha1 = sip_ha1s("alice", DOMAIN, password)["ha1_sha256"]
        uri = f"sip:{DOMAIN}"
        response = digest_response("SHA-256", ha1, nonce, method, uri, "auth", "00000001", "c0ffee")
        credentials = (f'Digest username="alice", realm="{DOMAIN}", nonce="{nonce}", uri="{uri}", '
                       f'response="{response}", algorithm=SHA-256, qop=auth, nc=00000001, cnonce="c0ffee"')
        return await self.authenticator.authenticate(Asked(authorization=(credentials,), **asked))

    async def guess_from_many(self, count=20):
        for n in range(count):
            decision = await self.attempt(f"203.0.113.{n + 1}", password=f"guess-{n:03d}-wrong")
            assert decision.subscriber is None


@pytest_twisted.async_yield_fixture
async def world(database):
    tree = await build_tree(database, "lock.example.net")
    clock = Clock()
    clock.advance(1_900_000_000)
    live = {}
    world = World(database, tree, clock, live)
    yield world


async def _noted(world, address):
    for _ in range(50):
        if await world.database.transact(siplocks.known_source, world.tree.subscriber["id"], address, 0):
            return
        await deferLater(reactor, 0.02, lambda: None)
    raise AssertionError(f"{address} was never noted")


@pytest_twisted.ensureDeferred
async def test_a_distributed_guess_locks_the_user_to_its_known_addresses_until_the_lock_ends(world, dsn):
    alice = world.tree.subscriber["id"]
    assert (await world.attempt(HOME)).subscriber.subscriber_id == alice
    await _noted(world, HOME)
    world.clock.advance(7 * 86400)
    world.live[alice] = [f"{PHONE}:5060"]

    await world.guess_from_many(20)
    lock = await world.database.transact(siplocks.lock_of, alice)
    assert lock is not None and lock["failures"] == 20 and lock["locked_until"].timestamp() == world.clock.seconds() + 600
    assert world.locks.locked(alice)

    wrong = await world.attempt("203.0.113.199", password="guess-xyz-wrong")
    stranger = await world.attempt("203.0.113.200")
    assert stranger.subscriber is None, "the right password from a new address"
    assert (stranger.status, stranger.drop) == (wrong.status, wrong.drop) == (0, True), "told apart from a wrong one"
    assert (await world.attempt(PHONE)).subscriber.subscriber_id == alice, "the registered phone"
    assert (await world.attempt(HOME, method="INVITE")).subscriber.subscriber_id == alice, "an address of last week"

    other_node = UserLocks(world.clock, world.database, lock_seconds=600, known_days=30, sources_of=lambda _: [])
    assert await other_node.load() == 1 and other_node.locked(alice), "another node, or this one restarted"

    world.clock.advance(601)
    assert (await world.attempt("203.0.113.201")).subscriber.subscriber_id == alice, "the lock ended"
    assert not other_node.locked(alice)


@pytest_twisted.ensureDeferred
async def test_the_isp_hears_once_and_a_new_password_lifts_the_lock_on_every_node(world, dsn):
    alice = world.tree.subscriber["id"]
    notifier = Notifier(reactor, dsn)
    await notifier.start()
    other_node = UserLocks(world.clock, world.database, lock_seconds=600, known_days=30, sources_of=lambda _: [])
    try:
        await other_node.attach(notifier)
        await world.guess_from_many(25)
        for _ in range(50):
            if other_node.locked(alice):
                break
            await deferLater(reactor, 0.02, lambda: None)
        assert other_node.locked(alice), "the notification reached the other node"
        rows = await world.database.transact(lambda tx: tx.fetch(
            "select kind, payload from outbox where isp_id = %s order by id", (world.tree.isp["id"],)))
        events = [json.loads(r["payload"]) if isinstance(r["payload"], str) else r["payload"] for r in rows]
        [hook] = [e for e, r in zip(events, rows) if r["kind"] == "webhook" and e["event"] == "sip.user_locked"]
        assert hook["data"]["username"] == "alice" and hook["data"]["domain"] == DOMAIN
        assert hook["data"]["failures"] == 20 and "203.0.113.1" in hook["data"]["sources"]
        [mail] = [e for e, r in zip(events, rows) if r["kind"] == "mail"]
        assert mail["to"] == "ops@lock.example.net" and "alice@" + DOMAIN in mail["subject"]

        await world.database.transact(subscribers.set_sip_password, world.tree.isp["id"], alice,
                                      "battery-staple-42")
        for _ in range(50):
            if not other_node.locked(alice):
                break
            await deferLater(reactor, 0.02, lambda: None)
        assert not other_node.locked(alice) and await world.database.transact(siplocks.lock_of, alice) is None
    finally:
        notifier.stop()


@pytest_twisted.ensureDeferred
async def test_a_lock_the_guessing_outlasts_is_extended_without_a_second_notice(world):
    alice = world.tree.subscriber["id"]
    await world.guess_from_many(20)
    first = (await world.database.transact(siplocks.lock_of, alice))["locked_until"]
    world.clock.advance(400)
    world.defence.clear()
    await world.guess_from_many(20)
    later = (await world.database.transact(siplocks.lock_of, alice))["locked_until"]
    assert later.timestamp() == first.timestamp() + 400
    count = await world.database.transact(lambda tx: tx.fetch_value(
        "select count(*) from outbox where isp_id = %s and payload->>'event' = 'sip.user_locked'",
        (world.tree.isp["id"],)))
    assert count == 1


@pytest_twisted.ensureDeferred
async def test_after_a_reconnect_every_lock_is_read_again(world):
    """A node that lost the store missed notifications: the notifier tells every cache
    EVERYTHING on reconnecting, and the locks are then read whole (it used to raise on int('*'))."""
    alice = world.tree.subscriber["id"]
    other_node = UserLocks(world.clock, world.database, lock_seconds=600, known_days=30, sources_of=lambda _: [])
    await world.guess_from_many(25)
    assert not other_node.locked(alice), "this node heard nothing"
    other_node._notified(EVERYTHING)
    for _ in range(50):
        if other_node.locked(alice):
            break
        await deferLater(reactor, 0.02, lambda: None)
    assert other_node.locked(alice)
