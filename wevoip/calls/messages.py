"""
What the B2BUA reads from and writes into SIP messages on both sides of a call: session
timers (RFC 4028, one negotiation per side), reliable provisionals (RFC 3262), the SDP test, our Contact, and the
status a media refusal gets.
"""

from __future__ import annotations

from wevoip.calls.machine import SessionTimer, Timer
from wevoip.media.sdp import SdpError
from wevoip.sip.core import SipCore
from wevoip.sip.flow import Flow
from wevoip.sip.message import Request, Response


def _number(text: str) -> int | None:
    """A positive 31-bit number as RFC 3261 and 4028 write them (ASCII digits only: '²' is
    a digit to Python but not to int())."""
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() and 0 < int(text) < 2 ** 31 else None


def _tokens(message: Request | Response, *names: str) -> list[str]:
    return [item.strip().lower() for name in names for value in message.headers.get_all(name)
            for item in value.split(",")]


def session_timer(message: Request | Response | None) -> Timer | None:
    """What a message says of session timers (RFC 4028 §4): Session-Expires with its
    refresher, Min-SE, 'timer' in Supported or Require, UPDATE in Allow. A value that is not
    a number counts as absent."""
    if message is None:
        return None
    interval, refresher = None, None
    value = message.headers.get("Session-Expires")
    if value:
        head, *params = value.split(";")
        interval = _number(head)
        for param in params:
            name, _, given = param.partition("=")
            if name.strip().lower() == "refresher" and given.strip().lower() in ("uac", "uas"):
                refresher = given.strip().lower()
    min_se = _number((message.headers.get("Min-SE") or "").split(";")[0])
    return Timer(interval, refresher, min_se, "timer" in _tokens(message, "Supported", "Require"),
                 "update" in _tokens(message, "Allow"))


def timer_headers(session: SessionTimer | None, *, request: bool, min_se: int) -> tuple[tuple[str, str], ...]:
    """Our side of a session timer in what goes into one dialog: a request we send there
    (we are its UAC: refresher=uac is us), or a 2xx we answer there with (we are its UAS:
    refresher=uas is us; Require: timer only to a peer that knows it, §9)."""
    if session is None:
        return (("Supported", "timer"),) if request else ()
    us = "uac" if request else "uas"
    refresher = us if session.we_refresh else ("uas" if request else "uac")
    headers = (("Session-Expires", f"{session.interval};refresher={refresher}"),)
    if request:
        return headers + (("Supported", "timer"), ("Min-SE", str(min_se)))
    return headers + ((("Require", "timer"),) if session.supported else ())


def too_brief(request: Request, min_se: int) -> bool:
    """An INVITE or UPDATE asking for a session interval below our Min-SE (RFC 4028 §9)."""
    timer = session_timer(request)
    return timer is not None and timer.interval is not None and timer.interval < min_se


def same_session(early: bytes, final: bytes) -> bool:
    """Whether two session descriptions describe the same media: alike but for their
    origin and session name (o= and s=, which differ between forks of one call)."""
    def media(body: bytes) -> list[bytes]:
        return [line for line in body.splitlines() if line.strip() and not line.startswith((b"o=", b"s="))]
    return media(early) == media(final)


def rack_of(request: Request) -> int | None:
    parts = (request.headers.get("RAck") or "").split()
    return _number(parts[0]) if parts else None


def is_reliable(response: Response) -> bool:
    require = ",".join(response.headers.get_all("Require")).lower()
    return "100rel" in require and 100 < response.status < 200 and rseq_of(response) is not None


def rseq_of(response: Response) -> int | None:
    return _number(response.headers.get("RSeq") or "")


def supports_100rel(request: Request) -> bool:
    values = ",".join(request.headers.get_all("Supported") + request.headers.get_all("Require")).lower()
    return "100rel" in [item.strip() for item in values.split(",")]


def media_refusal(error: Exception) -> tuple[int, str]:
    """488 for a description the relay cannot read, 503 when it has no room for the call."""
    if isinstance(error, SdpError):
        return 488, f"Not Acceptable Here: {error}"
    return 503, f"Service Unavailable: {error}"


def is_sdp(message: Request | Response) -> bool:
    return (message.headers.get("Content-Type") or "").split(";")[0].strip().lower() == "application/sdp"


def contact_for(core: SipCore, flow: Flow) -> str:
    transport = "" if flow.transport == "udp" else f";transport={flow.uri_transport}"
    return f"<sip:b2bua@{core.sent_by(flow)}{transport}>"
