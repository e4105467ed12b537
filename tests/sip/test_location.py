"""Bindings in PostgreSQL: group commit, survival of a restart, and sync between nodes."""

import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.task import deferLater

from tests.store.builders import build_tree
from wevoip.sip.location import Location
from wevoip.sip.registrar import ContactRequest, RegisterRequest, Registrar, RegistrarPolicy
from wevoip.store import registrations
from wevoip.store.notify import Notifier


def _node(database, name):
    registrar = Registrar(reactor, RegistrarPolicy(), node=name)
    return registrar, Location(reactor, database, registrar, name)


def _request(tree, contact, *, cseq=1, expires=None, call_id="c-1", transport="udp"):
    return RegisterRequest(tree.isp["id"], tree.tenant["id"], tree.subscriber["id"], call_id, cseq,
                           expires, (ContactRequest(contact),), source="192.0.2.9:5062",
                           transport=transport, local="127.0.0.1:5060")


async def _register(registrar, location, tree, contact, **kw):
    outcome = registrar.register(_request(tree, contact, **kw))
    await location.persist(tree.isp["id"], tree.tenant["id"], tree.subscriber["id"], outcome, "phone/1.0")
    return outcome


@pytest_twisted.ensureDeferred
async def test_one_turn_of_registers_is_one_commit_and_survives_a_restart(database):
    tree = await build_tree(database, "loc.example.net")
    registrar, location = _node(database, "n1")
    try:
        await defer.gatherResults([
            defer.Deferred.fromCoroutine(_register(registrar, location, tree, f"sip:alice@10.0.0.{i}:5060", cseq=i + 1))
            for i in range(5)])
        assert location.batches == 1
        rows = await database.transact(registrations.bindings_of, tree.isp["id"], tree.subscriber["id"])
        assert {row["contact"] for row in rows} >= {f"sip:alice@10.0.0.{i}:5060" for i in range(5)}
        row = next(r for r in rows if r["contact"] == "sip:alice@10.0.0.4:5060")
        assert (row["source"], row["local_address"], row["node"], row["user_agent"]) == (
            "192.0.2.9:5062", "127.0.0.1:5060", "n1", "phone/1.0")
        await _register(registrar, location, tree, "sip:alice@10.0.0.0:5060", cseq=9, expires=0)

        restarted, again = _node(database, "n1")
        assert await again.load() == len(rows) - 1  # one of the six removed
        contacts = {b.contact for b in restarted.bindings(tree.subscriber["id"])}
        assert "sip:alice@10.0.0.0:5060" not in contacts and "sip:alice@10.0.0.3:5060" in contacts
        restarted.stop()
    finally:
        registrar.stop()


@pytest_twisted.ensureDeferred
async def test_another_node_sees_a_registration_and_its_removal(database, dsn):
    tree = await build_tree(database, "sync.example.net")
    registrar_a, location_a = _node(database, "a")
    registrar_b, location_b = _node(database, "b")
    notifier = Notifier(reactor, dsn)
    await notifier.start()
    try:
        await location_b.attach(notifier)
        await _register(registrar_a, location_a, tree, "sip:alice@10.9.9.9:5060")
        subscriber = tree.subscriber["id"]
        for _ in range(50):
            if any(b.contact == "sip:alice@10.9.9.9:5060" for b in registrar_b.bindings(subscriber)):
                break
            await deferLater(reactor, 0.05, lambda: None)
        [seen] = [b for b in registrar_b.bindings(subscriber) if b.contact == "sip:alice@10.9.9.9:5060"]
        assert (seen.node, seen.flow, seen.source) == ("a", None, "192.0.2.9:5062")
        await _register(registrar_a, location_a, tree, "sip:alice@10.9.9.9:5060", cseq=2, expires=0)
        for _ in range(50):
            if not any(b.contact == "sip:alice@10.9.9.9:5060" for b in registrar_b.bindings(subscriber)):
                break
            await deferLater(reactor, 0.05, lambda: None)
        assert not any(b.contact == "sip:alice@10.9.9.9:5060" for b in registrar_b.bindings(subscriber))
    finally:
        notifier.stop()
        registrar_a.stop()
        registrar_b.stop()


@pytest_twisted.ensureDeferred
async def test_sweep_deletes_expired_rows(database):
    tree = await build_tree(database, "sweep.example.net")
    registrar, location = _node(database, "n1")
    await database.transact(lambda tx: tx.execute(
        "update registrations set expires_at = now() - interval '1 second' where isp_id = %s",
        (tree.isp["id"],)))
    assert await location.sweep() == 1
    registrar.stop()


def test_notify_payloads_are_split_under_the_limit():
    aors = [f"{i}:{i * 7}" for i in range(3000)]
    payloads = list(registrations.notify_payloads("node-1", aors))
    assert len(payloads) > 1 and all(len(p) < 8000 for p in payloads)
    assert [a for p in payloads for a in p.split("|")[1].split(",")] == aors
