"""Every RFC 3261 transaction timer, driven by task.Clock."""

import pytest
from twisted.internet.task import Clock

from wevoip.sip.transaction import (
    T1, T2, T4, ClientInviteTransaction, ClientNonInviteTransaction, ServerInviteTransaction,
    ServerNonInviteTransaction, State)


class Recorder:
    def __init__(self):
        self.sent, self.delivered, self.timeouts, self.ended = [], [], [], []

    def send(self, message):
        self.sent.append(message)

    def deliver(self, transaction, message):
        self.delivered.append(message)

    def timed_out(self, transaction):
        self.timeouts.append(transaction)

    def terminated(self, transaction):
        self.ended.append(transaction)


def client_invite(reliable=False):
    clock, owner = Clock(), Recorder()
    txn = ClientInviteTransaction("k", owner, clock, "INVITE", reliable=reliable,
                                  make_ack=lambda response: f"ACK for {response}")
    txn.start()
    return clock, owner, txn


def retransmit_times(clock, owner, until):
    """Jump from one timer to the next, noting when something was sent."""
    times = []
    while clock.getDelayedCalls():
        due = min(call.getTime() for call in clock.getDelayedCalls())
        if due > until:
            break
        before = len(owner.sent)
        clock.advance(due - clock.seconds())
        if len(owner.sent) > before:
            times.append(round(clock.seconds(), 3))
    return times


def test_timer_a_doubles_and_timer_b_times_out_an_unanswered_invite():
    clock, owner, txn = client_invite()
    times = retransmit_times(clock, owner, 64 * T1 + 0.05)
    assert times[:5] == [0.5, 1.5, 3.5, 7.5, 15.5]
    assert txn.state is State.TERMINATED and owner.timeouts == [txn] and owner.ended == [txn]
    sent = len(owner.sent)
    clock.advance(100)
    assert len(owner.sent) == sent


def test_a_reliable_invite_is_not_retransmitted_but_still_times_out():
    clock, owner, txn = client_invite(reliable=True)
    clock.advance(64 * T1 - 0.01)
    assert owner.sent == ["INVITE"] and not owner.timeouts
    clock.advance(0.02)
    assert owner.timeouts == [txn]


def test_a_provisional_stops_retransmission_and_an_error_is_acked_then_absorbed():
    clock, owner, txn = client_invite()
    txn.receive_response("180", 180)
    clock.advance(10)
    assert owner.sent == ["INVITE"] and txn.state is State.PROCEEDING
    txn.receive_response("486", 486)
    assert owner.sent == ["INVITE", "ACK for 486"] and owner.delivered == ["180", "486"]
    txn.receive_response("486", 486)  # the retransmitted final response gets the same ACK
    assert owner.sent[-1] == "ACK for 486" and owner.delivered == ["180", "486"]
    clock.advance(32 - 0.01)
    assert txn.state is State.COMPLETED
    clock.advance(0.02)
    assert txn.state is State.TERMINATED and not owner.timeouts


def test_a_2xx_is_accepted_and_its_retransmissions_go_up_until_timer_m():
    clock, owner, txn = client_invite()
    txn.receive_response("200", 200)
    txn.receive_response("200 again", 200)
    assert owner.delivered == ["200", "200 again"] and txn.state is State.ACCEPTED
    assert "ACK for 200" not in owner.sent  # the TU acknowledges a 2xx, not the transaction
    clock.advance(64 * T1)
    assert txn.state is State.TERMINATED


def test_non_invite_retransmissions_cap_at_t2_and_timer_f_times_out():
    clock, owner = Clock(), Recorder()
    txn = ClientNonInviteTransaction("k", owner, clock, "REGISTER", reliable=False)
    txn.start()
    times = retransmit_times(clock, owner, 64 * T1 + 0.05)
    gaps = [round(b - a, 2) for a, b in zip([0.0] + times, times)]
    assert gaps[:5] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert max(gaps) == T2
    assert owner.timeouts == [txn]


def test_non_invite_in_proceeding_retransmits_every_t2():
    clock, owner = Clock(), Recorder()
    txn = ClientNonInviteTransaction("k", owner, clock, "OPTIONS", reliable=False)
    txn.start()
    txn.receive_response("100", 100)
    times = retransmit_times(clock, owner, 12)
    gaps = [round(b - a, 2) for a, b in zip(times, times[1:])]
    assert gaps and all(gap == T2 for gap in gaps)


def test_non_invite_completed_waits_timer_k_over_udp_and_not_over_tcp():
    for reliable, wait in ((False, T4), (True, 0.0)):
        clock, owner = Clock(), Recorder()
        txn = ClientNonInviteTransaction("k", owner, clock, "REGISTER", reliable=reliable)
        txn.start()
        txn.receive_response("200", 200)
        assert txn.state is State.COMPLETED
        clock.advance(wait)
        assert txn.state is State.TERMINATED and owner.delivered == ["200"]


def server_invite(reliable=False):
    clock, owner = Clock(), Recorder()
    return clock, owner, ServerInviteTransaction("k", owner, clock, "INVITE", reliable=reliable)


def test_server_invite_repeats_its_last_provisional_on_a_retransmitted_invite():
    clock, owner, txn = server_invite()
    txn.handle("retransmission")
    assert owner.sent == []
    txn.respond("100", 100)
    txn.handle("retransmission")
    assert owner.sent == ["100", "100"]


def test_timer_g_retransmits_an_error_until_timer_h_gives_up():
    clock, owner, txn = server_invite()
    txn.respond("486", 486)
    times = retransmit_times(clock, owner, 64 * T1 + 0.05)
    gaps = [round(b - a, 2) for a, b in zip([0.0] + times, times)]
    assert gaps[:5] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert owner.timeouts == [txn] and txn.state is State.TERMINATED


def test_an_ack_confirms_and_timer_i_absorbs_ack_retransmissions():
    clock, owner, txn = server_invite()
    txn.respond("486", 486)
    txn.handle("ack")
    assert txn.state is State.CONFIRMED
    sent = len(owner.sent)
    clock.advance(T4 - 0.01)
    txn.handle("ack")
    assert len(owner.sent) == sent and txn.state is State.CONFIRMED
    clock.advance(0.02)
    assert txn.state is State.TERMINATED and not owner.timeouts


def test_server_invite_2xx_is_resent_by_the_tu_and_acks_go_up():
    clock, owner, txn = server_invite()
    txn.respond("200", 200)
    txn.respond("200 again", 200)
    txn.handle("ack", "ACK")
    assert owner.sent == ["200", "200 again"] and owner.delivered == ["ACK"]
    clock.advance(64 * T1)
    assert txn.state is State.TERMINATED


@pytest.mark.parametrize("reliable, wait", [(False, 64 * T1), (True, 0.0)])
def test_server_non_invite_answers_retransmissions_until_timer_j(reliable, wait):
    clock, owner = Clock(), Recorder()
    txn = ServerNonInviteTransaction("k", owner, clock, "REGISTER", reliable=reliable)
    txn.handle("retransmission")
    assert owner.sent == []
    txn.respond("200", 200)
    if not reliable:
        txn.handle("retransmission")
        assert owner.sent == ["200", "200"]
    clock.advance(wait)
    assert txn.state is State.TERMINATED
    assert not txn.handle("retransmission")


def test_a_transport_error_ends_a_client_transaction_as_a_timeout():
    clock, owner, txn = client_invite()
    txn.handle("transport_error")
    assert owner.timeouts == [txn] and txn.state is State.TERMINATED
    clock.advance(100)
    assert owner.sent == ["INVITE"]
