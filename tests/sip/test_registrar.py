"""RFC 3261 §10.3 decisions and expiry of the in-memory index, on a task.Clock."""

import pytest
from twisted.internet.task import Clock

from wevoip.sip.registrar import (ContactRequest, RegisterRequest, Registrar, RegistrarPolicy,
                                  contact_key, contact_value)

ALICE = 7


@pytest.fixture
def registrar():
    clock = Clock()
    clock.advance(1_800_000_000)
    expired = []
    registrar = Registrar(clock, RegistrarPolicy(min_expires=60, max_expires=3600,
                                                 default_expires=600, max_contacts=3),
                          node="n1", on_expired=lambda sub, bindings: expired.append((sub, bindings)))
    registrar.expired = expired
    yield registrar
    registrar.stop()


def _register(registrar, *contacts, call_id="c1", cseq=1, expires=None, wildcard=False,
              source="192.0.2.5:5060"):
    return registrar.register(RegisterRequest(
        isp_id=1, tenant_id=2, subscriber_id=ALICE, call_id=call_id, cseq=cseq, expires=expires,
        contacts=tuple(c if isinstance(c, ContactRequest) else ContactRequest(c) for c in contacts),
        wildcard=wildcard, source=source, transport="udp"))


def test_add_and_list_several_contacts_with_q(registrar):
    outcome = _register(registrar, ContactRequest("sip:a@10.0.0.1", q=500),
                        ContactRequest("sip:a@10.0.0.2", q=1000, expires=120))
    assert outcome.status == 200
    assert [b.contact for b in outcome.contacts] == ["sip:a@10.0.0.2", "sip:a@10.0.0.1"]
    assert [contact_value(b, registrar.clock.seconds()) for b in outcome.contacts] == [
        "<sip:a@10.0.0.2>;expires=120", "<sip:a@10.0.0.1>;expires=600;q=0.5"]
    assert [b.source for b in registrar.bindings(ALICE)] == ["192.0.2.5:5060"] * 2
    assert len(outcome.saved) == 2


def test_query_without_contacts_lists_and_changes_nothing(registrar):
    _register(registrar, "sip:a@10.0.0.1")
    outcome = _register(registrar, cseq=2)
    assert outcome.status == 200 and outcome.saved == [] and outcome.removed == []
    assert [b.contact for b in outcome.contacts] == ["sip:a@10.0.0.1"]


def test_too_brief_is_423_with_min_expires_and_too_long_is_cut(registrar):
    outcome = _register(registrar, "sip:a@10.0.0.1", expires=30)
    assert (outcome.status, outcome.min_expires) == (423, 60)
    assert registrar.bindings(ALICE) == []
    outcome = _register(registrar, "sip:a@10.0.0.1", expires=99999, cseq=2)
    assert outcome.contacts[0].expires_in(registrar.clock.seconds()) == 3600


def test_expires_zero_removes_one_contact(registrar):
    _register(registrar, "sip:a@10.0.0.1", "sip:a@10.0.0.2")
    outcome = _register(registrar, ContactRequest("sip:a@10.0.0.1", expires=0), cseq=2)
    assert outcome.removed == ["sip:a@10.0.0.1"]
    assert [b.contact for b in registrar.bindings(ALICE)] == ["sip:a@10.0.0.2"]


def test_same_call_id_needs_a_higher_cseq(registrar):
    _register(registrar, "sip:a@10.0.0.1", cseq=5)
    outcome = _register(registrar, "sip:a@10.0.0.1", cseq=5, expires=0)
    assert outcome.status == 400 and "CSeq" in outcome.reason
    assert len(registrar.bindings(ALICE)) == 1
    assert _register(registrar, "sip:a@10.0.0.1", cseq=3, call_id="other", expires=0).status == 200
    assert registrar.bindings(ALICE) == []


def test_star_removes_all_but_only_with_expires_zero_and_alone(registrar):
    _register(registrar, "sip:a@10.0.0.1", "sip:a@10.0.0.2")
    assert _register(registrar, wildcard=True, cseq=2, expires=60).status == 400
    assert _register(registrar, "sip:a@10.0.0.3", wildcard=True, cseq=2, expires=0).status == 400
    assert _register(registrar, wildcard=True, cseq=1, expires=0).status == 400
    outcome = _register(registrar, wildcard=True, cseq=2, expires=0)
    assert outcome.status == 200 and sorted(outcome.removed) == ["sip:a@10.0.0.1", "sip:a@10.0.0.2"]
    assert registrar.bindings(ALICE) == [] and len(registrar) == 0


def test_contacts_compare_as_uris(registrar):
    assert contact_key("SIP:alice@Example.COM;Transport=TCP;lr") == contact_key("sip:alice@example.com;lr;transport=tcp")
    assert contact_key("sip:Alice@example.com") != contact_key("sip:alice@example.com")
    _register(registrar, "sip:a@HOST.example;transport=tcp")
    _register(registrar, "sip:a@host.example;transport=TCP", cseq=2)
    assert len(registrar.bindings(ALICE)) == 1


def test_same_instance_replaces_its_old_contact(registrar):
    _register(registrar, ContactRequest("sip:a@10.0.0.1:5060", instance="<urn:uuid:1>", reg_id=1))
    outcome = _register(registrar, ContactRequest("sip:a@10.0.0.9:5062", instance="<urn:uuid:1>", reg_id=1), cseq=2)
    assert outcome.removed == ["sip:a@10.0.0.1:5060"]
    assert [b.contact for b in registrar.bindings(ALICE)] == ["sip:a@10.0.0.9:5062"]


def test_contact_limit(registrar):
    _register(registrar, *[f"sip:a@10.0.0.{i}" for i in range(3)])
    outcome = _register(registrar, "sip:a@10.0.0.9", call_id="another-phone")
    assert outcome.status == 403
    assert len(registrar.bindings(ALICE)) == 3


def test_a_phone_rebound_by_its_nat_replaces_its_stale_binding(registrar):
    """Issue 12 point 16: no +sip.instance, the same Call-ID and source address, a new port
    each time (the contact follows it): the limit (3 here) must never be reached."""
    for n in range(20):
        outcome = _register(registrar, f"sip:a@203.0.113.7:{40000 + n}", cseq=n + 1,
                            source=f"203.0.113.7:{40000 + n}")
        assert (outcome.status, outcome.removed) == (200, [f"sip:a@203.0.113.7:{39999 + n}"] if n else [])
    assert [b.contact for b in registrar.bindings(ALICE)] == ["sip:a@203.0.113.7:40019"]


def test_what_is_not_the_same_phone_is_kept(registrar):
    """Another Call-ID (another phone behind the same NAT, or a reboot), another source
    address, or a refresh that adds nothing: no binding is dropped."""
    _register(registrar, "sip:a@203.0.113.7:40000", "sip:a@203.0.113.7:40001", source="203.0.113.7:40000")
    assert _register(registrar, "sip:a@203.0.113.7:40000", cseq=2, source="203.0.113.7:40000").removed == []
    assert len(registrar.bindings(ALICE)) == 2
    added = _register(registrar, "sip:a@203.0.113.7:40002", cseq=3, source="203.0.113.7:40000")
    assert added.removed == [] and len(registrar.bindings(ALICE)) == 3, "contacts added from the same port"
    _register(registrar, "sip:a@203.0.113.7:40002", cseq=4, expires=0, source="203.0.113.7:40000")
    other = _register(registrar, "sip:a@203.0.113.7:41000", call_id="c2", source="203.0.113.7:41000")
    assert other.removed == [] and len(registrar.bindings(ALICE)) == 3
    moved = _register(registrar, "sip:a@198.51.100.9:5060", call_id="c2", cseq=2, source="198.51.100.9:5060")
    assert moved.status == 403
    rebound = _register(registrar, "sip:a@203.0.113.7:41001", call_id="c2", cseq=3, source="203.0.113.7:41001")
    assert rebound.removed == ["sip:a@203.0.113.7:41000"] and len(registrar.bindings(ALICE)) == 3


def test_bindings_expire_on_time(registrar):
    _register(registrar, ContactRequest("sip:a@10.0.0.1", expires=60),
              ContactRequest("sip:a@10.0.0.2", expires=120))
    registrar.clock.advance(59)
    assert len(registrar.bindings(ALICE)) == 2
    registrar.clock.advance(1)
    assert [b.contact for b in registrar.bindings(ALICE)] == ["sip:a@10.0.0.2"]
    assert [(sub, [b.contact for b in bs]) for sub, bs in registrar.expired] == [(ALICE, ["sip:a@10.0.0.1"])]
    registrar.clock.advance(60)
    assert len(registrar) == 0 and registrar.aor(ALICE) is None


def test_refresh_postpones_and_shortening_brings_forward(registrar):
    _register(registrar, ContactRequest("sip:a@10.0.0.1", expires=60))
    registrar.clock.advance(50)
    _register(registrar, ContactRequest("sip:a@10.0.0.1", expires=60), cseq=2)
    registrar.clock.advance(50)
    assert len(registrar) == 1
    _register(registrar, ContactRequest("sip:a@10.0.0.1", expires=3600), cseq=3)
    _register(registrar, ContactRequest("sip:a@10.0.0.1", expires=60), cseq=4)
    registrar.clock.advance(61)
    assert len(registrar) == 0
    assert registrar.clock.getDelayedCalls() == []


def test_replace_takes_another_nodes_view_and_keeps_our_flow(registrar):
    flow = object()
    outcome = registrar.register(RegisterRequest(1, 2, ALICE, "c1", 1, None,
                                                 (ContactRequest("sip:a@10.0.0.1;transport=tcp"),),
                                                 transport="tcp", flow=flow))
    copy = [type(b)(**{k: getattr(b, k) for k in b.__slots__}) for b in outcome.contacts]
    for b in copy:
        b.flow = None
    registrar.replace(ALICE, 1, 2, copy)
    assert registrar.bindings(ALICE)[0].flow is flow
    registrar.replace(ALICE, 1, 2, [])
    assert registrar.aor(ALICE) is None


def test_options_pings_reach_each_udp_binding_once_per_interval(registrar):
    from wevoip.sip.keepalive import OptionsPinger
    from wevoip.sip.message import parse
    sent = []
    for subscriber in (1, 2, 3):
        registrar.register(RegisterRequest(1, 2, subscriber, "c", 1, 600,
                                           (ContactRequest(f"sip:p{subscriber}@10.0.0.{subscriber}:5060"),),
                                           source="192.0.2.1:5060", transport="udp", local="127.0.0.1:5060"))
    registrar.register(RegisterRequest(1, 2, 4, "c", 1, 600, (ContactRequest("sip:p4@10.0.0.4;transport=tcp"),),
                                       transport="tcp"))
    pinger = OptionsPinger(registrar.clock, registrar, lambda binding, data: sent.append((binding, data)), 3)
    pinger.start()
    registrar.clock.advance(1)
    registrar.clock.advance(1)
    registrar.clock.advance(1)
    pinger.stop()
    assert sorted(b.contact for b, _ in sent) == ["sip:p1@10.0.0.1:5060", "sip:p2@10.0.0.2:5060",
                                                 "sip:p3@10.0.0.3:5060"]
    request = parse(sent[0][1])
    assert request.method == "OPTIONS" and str(request.uri) == sent[0][0].contact
    assert request.top_via.host == "127.0.0.1"
