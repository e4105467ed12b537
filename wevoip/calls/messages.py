"""
What the B2BUA reads from and writes into SIP messages on both sides of a call: session
timers (RFC 4028), reliable provisionals (RFC 3262), the SDP test, our Contact, and the
status a media refusal gets.
"""

from __future__ import annotations

from wevoip.media.sdp import SdpError
from wevoip.sip.core import SipCore
from wevoip.sip.flow import Flow
from wevoip.sip.message import Request, Response


def session_expires(message: Response | Request | None) -> int | None:
    value = message.headers.get("Session-Expires") if message is not None else None
    if not value:
        return None
    head = value.split(";", 1)[0].strip()
    return int(head) if head.isdigit() and 0 < int(head) < 2 ** 31 else None


def rack_of(request: Request) -> int | None:
    parts = (request.headers.get("RAck") or "").split()
    return int(parts[0]) if parts and parts[0].isdigit() else None


def is_reliable(response: Response) -> bool:
    require = ",".join(response.headers.get_all("Require")).lower()
    return "100rel" in require and 100 < response.status < 200 and (response.headers.get("RSeq") or "").isdigit()


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
    transport = "" if flow.transport == "udp" else f";transport={flow.transport}"
    return f"<sip:b2bua@{core.sent_by(flow)}{transport}>"
