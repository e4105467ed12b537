"""
The four SIP transaction state machines of RFC 3261 §17, with RFC 6026's Accepted state.

Each machine is a transition table, `(state, event) -> (next state, actions)`, that reads
like the RFC's figures; the class around it only carries out the actions (send, start or
stop a timer, hand a response up, end). Messages are opaque here: the caller says which
event a message is (a provisional, a 2xx, an error response, a retransmission), so the
machines need no parser and no sockets, and every timer runs on an injected clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime

T1 = 0.5
T2 = 4.0
T4 = 5.0


class State(enum.Enum):
    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


class Owner(Protocol):
    """What a transaction needs from the layer that holds it."""

    def send(self, message: Any) -> None: ...

    def deliver(self, transaction: "Transaction", message: Any) -> None: ...

    def timed_out(self, transaction: "Transaction") -> None: ...

    def terminated(self, transaction: "Transaction") -> None: ...


@dataclass(frozen=True)
class Step:
    next: State
    actions: tuple[str, ...] = ()


Table = dict[tuple[State, str], Step]
S = State

# Client INVITE (RFC 3261 figure 5, RFC 6026 figure 3).
CLIENT_INVITE: Table = {
    (S.CALLING, "timer_A"): Step(S.CALLING, ("resend_request", "restart_A")),
    (S.CALLING, "timer_B"): Step(S.TERMINATED, ("report_timeout",)),
    (S.CALLING, "provisional"): Step(S.PROCEEDING, ("stop_A", "stop_B", "deliver")),
    (S.CALLING, "success"): Step(S.ACCEPTED, ("stop_A", "stop_B", "deliver", "start_M")),
    (S.CALLING, "failure"): Step(S.COMPLETED, ("stop_A", "stop_B", "deliver", "send_ack", "start_D")),
    (S.CALLING, "transport_error"): Step(S.TERMINATED, ("report_timeout",)),
    (S.PROCEEDING, "provisional"): Step(S.PROCEEDING, ("deliver",)),
    (S.PROCEEDING, "success"): Step(S.ACCEPTED, ("deliver", "start_M")),
    (S.PROCEEDING, "failure"): Step(S.COMPLETED, ("deliver", "send_ack", "start_D")),
    (S.COMPLETED, "failure"): Step(S.COMPLETED, ("send_ack",)),
    (S.COMPLETED, "transport_error"): Step(S.TERMINATED, ()),
    (S.COMPLETED, "timer_D"): Step(S.TERMINATED, ()),
    (S.ACCEPTED, "success"): Step(S.ACCEPTED, ("deliver",)),
    (S.ACCEPTED, "timer_M"): Step(S.TERMINATED, ()),
}

# Client non-INVITE (figure 6).
CLIENT_NON_INVITE: Table = {
    (S.TRYING, "timer_E"): Step(S.TRYING, ("resend_request", "restart_E")),
    (S.TRYING, "timer_F"): Step(S.TERMINATED, ("report_timeout",)),
    (S.TRYING, "provisional"): Step(S.PROCEEDING, ("deliver",)),
    (S.TRYING, "success"): Step(S.COMPLETED, ("stop_E", "stop_F", "deliver", "start_K")),
    (S.TRYING, "failure"): Step(S.COMPLETED, ("stop_E", "stop_F", "deliver", "start_K")),
    (S.TRYING, "transport_error"): Step(S.TERMINATED, ("report_timeout",)),
    (S.PROCEEDING, "timer_E"): Step(S.PROCEEDING, ("resend_request", "restart_E_at_T2")),
    (S.PROCEEDING, "timer_F"): Step(S.TERMINATED, ("report_timeout",)),
    (S.PROCEEDING, "provisional"): Step(S.PROCEEDING, ("deliver",)),
    (S.PROCEEDING, "success"): Step(S.COMPLETED, ("stop_E", "stop_F", "deliver", "start_K")),
    (S.PROCEEDING, "failure"): Step(S.COMPLETED, ("stop_E", "stop_F", "deliver", "start_K")),
    (S.PROCEEDING, "transport_error"): Step(S.TERMINATED, ("report_timeout",)),
    (S.COMPLETED, "timer_K"): Step(S.TERMINATED, ()),
}

# Server INVITE (figure 7, RFC 6026 figure 5). "respond_*" events come from the TU.
SERVER_INVITE: Table = {
    (S.PROCEEDING, "retransmission"): Step(S.PROCEEDING, ("resend_response",)),
    (S.PROCEEDING, "respond_provisional"): Step(S.PROCEEDING, ("send_response",)),
    (S.PROCEEDING, "respond_success"): Step(S.ACCEPTED, ("send_response", "start_L")),
    (S.PROCEEDING, "respond_failure"): Step(S.COMPLETED, ("send_response", "start_G", "start_H")),
    (S.PROCEEDING, "transport_error"): Step(S.TERMINATED, ("report_timeout",)),
    (S.COMPLETED, "retransmission"): Step(S.COMPLETED, ("resend_response",)),
    (S.COMPLETED, "timer_G"): Step(S.COMPLETED, ("resend_response", "restart_G")),
    (S.COMPLETED, "timer_H"): Step(S.TERMINATED, ("report_timeout",)),
    (S.COMPLETED, "ack"): Step(S.CONFIRMED, ("stop_G", "stop_H", "start_I")),
    (S.COMPLETED, "transport_error"): Step(S.TERMINATED, ("report_timeout",)),
    (S.CONFIRMED, "ack"): Step(S.CONFIRMED, ()),
    (S.CONFIRMED, "retransmission"): Step(S.CONFIRMED, ()),
    (S.CONFIRMED, "timer_I"): Step(S.TERMINATED, ()),
    (S.ACCEPTED, "retransmission"): Step(S.ACCEPTED, ()),
    (S.ACCEPTED, "respond_success"): Step(S.ACCEPTED, ("send_response",)),
    (S.ACCEPTED, "ack"): Step(S.ACCEPTED, ("deliver",)),
    (S.ACCEPTED, "timer_L"): Step(S.TERMINATED, ()),
}

# Server non-INVITE (figure 8).
SERVER_NON_INVITE: Table = {
    (S.TRYING, "retransmission"): Step(S.TRYING, ()),
    (S.TRYING, "respond_provisional"): Step(S.PROCEEDING, ("send_response",)),
    (S.TRYING, "respond_success"): Step(S.COMPLETED, ("send_response", "start_J")),
    (S.TRYING, "respond_failure"): Step(S.COMPLETED, ("send_response", "start_J")),
    (S.PROCEEDING, "retransmission"): Step(S.PROCEEDING, ("resend_response",)),
    (S.PROCEEDING, "respond_provisional"): Step(S.PROCEEDING, ("send_response",)),
    (S.PROCEEDING, "respond_success"): Step(S.COMPLETED, ("send_response", "start_J")),
    (S.PROCEEDING, "respond_failure"): Step(S.COMPLETED, ("send_response", "start_J")),
    (S.PROCEEDING, "transport_error"): Step(S.TERMINATED, ("report_timeout",)),
    (S.COMPLETED, "retransmission"): Step(S.COMPLETED, ("resend_response",)),
    (S.COMPLETED, "respond_success"): Step(S.COMPLETED, ()),
    (S.COMPLETED, "respond_failure"): Step(S.COMPLETED, ()),
    (S.COMPLETED, "transport_error"): Step(S.TERMINATED, ()),
    (S.COMPLETED, "timer_J"): Step(S.TERMINATED, ()),
}


DURATIONS = {"A": T1, "B": 64 * T1, "D": 32.0, "M": 64 * T1, "E": T1, "F": 64 * T1, "K": T4,
             "G": T1, "H": 64 * T1, "I": T4, "L": 64 * T1, "J": 64 * T1}
# Timers that only repeat or wait out retransmissions over UDP are zero (not run) on
# reliable transports.
RELIABLE_DURATIONS = {**DURATIONS, **{timer: 0.0 for timer in "ADEKGIJ"}}


def response_event(status: int) -> str:
    if status < 200:
        return "provisional"
    return "success" if status < 300 else "failure"


class Transaction:
    """Runs one table. Unlisted (state, event) pairs are absorbed, as the RFC says they are."""

    table: Table
    initial: State

    def __init__(self, key: Any, owner: Owner, clock: IReactorTime, *, reliable: bool):
        self.key = key
        self.owner = owner
        self.clock = clock
        self.reliable = reliable
        self.state = self.initial
        self._timers: dict[str, IDelayedCall] = {}
        self._intervals: dict[str, float] = {}
        self._pending: Any = None

    def handle(self, event: str, message: Any = None) -> bool:
        """Apply one event; False when the table has nothing for it (absorbed)."""
        step = self.table.get((self.state, event))
        if step is None:
            return False
        self._pending = message
        self.state = step.next
        for action in step.actions:
            self._act(action)
        self._pending = None
        if self.state is State.TERMINATED:
            self._terminate()
        return True

    def _act(self, action: str) -> None:
        """`start_X`, `restart_X` and `stop_X` drive timer X; other actions are methods."""
        method = getattr(self, f"_{action}", None)
        if method is not None:
            method()
            return
        verb, _, timer = action.partition("_")
        {"start": self._start, "restart": self._restart, "stop": self._stop}[verb](timer)

    def _start(self, timer: str) -> None:
        duration = (RELIABLE_DURATIONS if self.reliable else DURATIONS)[timer]
        if timer in "AEG" and not duration:
            return
        self._intervals[timer] = duration
        self._schedule(timer, duration)

    def _schedule(self, timer: str, delay: float) -> None:
        self._stop(timer)
        self._timers[timer] = self.clock.callLater(delay, self.handle, f"timer_{timer}")

    def _restart(self, timer: str) -> None:
        """Retransmit timers double, capped at T2 for E and G (A doubles without a cap)."""
        interval = self._intervals[timer] * 2
        if timer in "EG":
            interval = min(interval, T2)
        self._intervals[timer] = interval
        self._schedule(timer, interval)

    def _stop(self, timer: str) -> None:
        call = self._timers.pop(timer, None)
        if call is not None and call.active():
            call.cancel()

    def _report_timeout(self) -> None:
        self.owner.timed_out(self)

    def _deliver(self) -> None:
        self.owner.deliver(self, self._pending)

    def _terminate(self) -> None:
        for timer in list(self._timers):
            self._stop(timer)
        self.owner.terminated(self)


class ClientTransaction(Transaction):
    def __init__(self, key: Any, owner: Owner, clock: IReactorTime, request: Any, *, reliable: bool,
                 make_ack: Callable[[Any], Any] | None = None):
        super().__init__(key, owner, clock, reliable=reliable)
        self.request = request
        self.make_ack = make_ack
        self._ack = None

    def start(self) -> None:
        self.owner.send(self.request)
        for timer in self.first_timers:
            self._start(timer)

    def receive_response(self, response: Any, status: int) -> bool:
        return self.handle(response_event(status), response)

    def _resend_request(self) -> None:
        self.owner.send(self.request)

    def _restart_E_at_T2(self) -> None:  # noqa: N802 (the RFC's timer name)
        self._intervals["E"] = T2
        self._schedule("E", T2)

    def _send_ack(self) -> None:
        """The ACK for a non-2xx final response belongs to the transaction (§17.1.1.3)."""
        if self._ack is None:
            self._ack = self.make_ack(self._pending)
        self.owner.send(self._ack)


class ClientInviteTransaction(ClientTransaction):
    table = CLIENT_INVITE
    initial = State.CALLING
    first_timers = ("A", "B")


class ClientNonInviteTransaction(ClientTransaction):
    table = CLIENT_NON_INVITE
    initial = State.TRYING
    first_timers = ("E", "F")


class ServerTransaction(Transaction):
    def __init__(self, key: Any, owner: Owner, clock: IReactorTime, request: Any, *, reliable: bool):
        super().__init__(key, owner, clock, reliable=reliable)
        self.request = request
        self.last_response = None

    def respond(self, response: Any, status: int) -> bool:
        return self.handle(f"respond_{response_event(status)}", response)

    def _send_response(self) -> None:
        self.last_response = self._pending
        self.owner.send(self.last_response)

    def _resend_response(self) -> None:
        if self.last_response is not None:
            self.owner.send(self.last_response)


class ServerInviteTransaction(ServerTransaction):
    table = SERVER_INVITE
    initial = State.PROCEEDING


class ServerNonInviteTransaction(ServerTransaction):
    table = SERVER_NON_INVITE
    initial = State.TRYING
