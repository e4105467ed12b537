"""
What the call machine tells its owner (`Owner.perform`), one action at a time, and the
record it ends with. Kept apart from the transition table so that the adapter, the call
applications and the record's readers name these without reading the machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


# `message` is the peer's message an action relays (None when the B2BUA speaks).

@dataclass(frozen=True)
class StartLeg:
    """`session_expires` is the interval the leg's INVITE asks for (RFC 4028), if any."""

    leg: int
    target: Any
    session_expires: int | None = None


@dataclass(frozen=True)
class RetryLeg:
    """The leg's INVITE got 422 (RFC 4028 §7.3): send it again asking for `session_expires`."""

    leg: int
    session_expires: int


@dataclass(frozen=True)
class CancelLeg:
    leg: int


@dataclass(frozen=True)
class AckLeg:
    """ACK for the 2xx of the leg's INVITE; `message` is A's ACK when it carries an answer."""

    leg: int
    message: Any = None


@dataclass(frozen=True)
class PrackLeg:
    """The B2BUA acknowledges a reliable provisional itself (A never asked for 100rel)."""

    leg: int
    rseq: int


@dataclass(frozen=True)
class ByeLeg:
    """`reason`: a Reason header (RFC 3326) saying why the B2BUA hangs up, when it says."""

    leg: int
    reason: str | None = None


@dataclass(frozen=True)
class ByeA:
    reason: str | None = None


@dataclass(frozen=True)
class RespondA:
    """A response to A's INVITE; `sdp` False means send it without the body."""

    status: int
    reason: str
    message: Any = None
    sdp: bool = False
    reliable: bool = False
    rseq: int | None = None


@dataclass(frozen=True)
class Respond:
    """A response to an in-dialog request received on `side` ("a" or "b" with `leg`);
    `min_se` goes with a 422."""

    side: str
    key: Any
    status: int
    reason: str
    message: Any = None
    leg: int | None = None
    min_se: int | None = None


@dataclass(frozen=True)
class Relay:
    """Send a request received on one side into the other side's dialog.

    `key` names the received request: its response comes back with the same key.
    `rseq` is the RAck's number on the leg for a PRACK.
    """

    to: str
    key: Any
    method: str
    message: Any
    leg: int | None = None
    rseq: int | None = None


@dataclass(frozen=True)
class Refresh:
    """A request of the B2BUA's own into one side's dialog: an UPDATE without a body, or a
    re-INVITE with the session description that side already has (a session refresh,
    RFC 4028 §10), or with `message`'s (A told of the answering leg's media). Its responses
    come back with `key`, like a relayed request's."""

    to: str
    key: Any
    method: str
    leg: int | None = None
    message: Any = None


@dataclass(frozen=True)
class RelayAck:
    """The ACK for a relayed re-INVITE's 2xx, sent on the side the re-INVITE went to."""

    to: str
    key: Any
    message: Any
    leg: int | None = None


@dataclass(frozen=True)
class Attempt:
    leg: int
    target: Any
    status: int | None = None


@dataclass(frozen=True)
class CallRecord:
    """The facts a CDR is written from. Times are ms on the injected clock."""

    start_ms: int
    answer_ms: int | None
    end_ms: int
    disposition: str        # answered, busy, no answer, failed, cancelled
    status: int             # the final SIP status A was given
    hung_up_by: str         # caller, callee, system
    reason: str
    answered_leg: int | None
    attempts: tuple[Attempt, ...]


@dataclass(frozen=True)
class Ended:
    record: CallRecord
