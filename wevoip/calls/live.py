"""
The WebRTC calls in progress on this node, as the tenant console and the API show them:
whose call it is, when it started and was answered, and for each browser leg what the
gateway sees (ICE, DTLS, SRTP, counters both ways).

A call in progress lives in the memory of the node that carries its signalling and media,
so each node answers for its own calls and names itself in every row; with several nodes,
ask each one (the health page lists the node's name). Counters are read at the moment of
the request, never stored: a call's record keeps only what its media did in the end
(`cdrs.media_flow`).
"""

from __future__ import annotations

from typing import Any, Iterable

from wevoip.calls.facts import utc_at


def webrtc_calls(sessions: Iterable[Any], node: str, isp_id: int, *, customer_id: int | None = None,
                 tenant_id: int | None = None) -> list[dict]:
    """The calls among `sessions` (the B2BUA's) of one ISP, narrowed to a customer or a
    tenant, that have a browser leg now; oldest first."""
    found = []
    for session in sessions:
        admitted = session.admitted
        if admitted.isp_id != isp_id or session.call.record is not None:
            continue
        if customer_id is not None and admitted.customer_id != customer_id:
            continue
        if tenant_id is not None and admitted.tenant_id != tenant_id:
            continue
        live_stats = getattr(session.media, "live_stats", None)
        legs = live_stats() if live_stats is not None else {}
        if not legs:
            continue
        found.append(_row(session, node, legs))
    return sorted(found, key=lambda row: row["started_at"])


def _row(session: Any, node: str, legs: dict[str, dict]) -> dict:
    admitted, call = session.admitted, session.call
    invite = session.incoming.request
    answered = call.answered_ms
    return {
        "node": node, "call_id": invite.call_id,
        "call_ids": [invite.call_id, *(leg.dialog.call_id for leg in session.legs)],
        "customer_id": admitted.customer_id, "tenant_id": admitted.tenant_id,
        "subscriber_id": admitted.subscriber_id,
        "callee_subscriber_id": getattr(admitted.route, "subscriber_id", None),
        "direction": admitted.direction, "caller": str(invite.from_.uri), "dialled": invite.uri.user or "",
        "started_at": utc_at(call.started_ms), "answered_at": utc_at(answered) if answered is not None else None,
        "one_way": session.media.one_way(),
        "legs": [_leg(name, stats) for name, stats in sorted(legs.items())],
    }


def _leg(name: str, stats: dict) -> dict:
    """One browser leg: 'a' is the caller's side, 'b' the callee's."""
    ice, srtp, plain = stats["ice"], stats["srtp"], stats["plain"]
    nothing = {"packets": 0, "octets": 0, "refused": 0}
    return {
        "leg": name, "side": "caller" if name == "a" else "callee", "port": stats["port"],
        "ice": {"state": ice["state"], "nominated": _address(ice["selected"]),
                "valid": [_address(address) for address in ice["valid"]],
                "consent": not ice["consent_expired"], "last_check_ms": ice["last_check_ms"],
                "checks_answered": ice["answered"], "checks_refused": ice["refused"]},
        "dtls": dict(stats["dtls"]),
        "srtp": {"active": srtp["profile"] is not None, "profile": srtp["profile"]},
        "from_browser": srtp["received"] or nothing, "to_browser": srtp["sent"] or nothing,
        "rtp": dict(stats["rtp"]),
        "plain": {"to_relay": plain["sent"], "from_relay": plain["received"]},
        "dropped": dict(stats["dropped"]),
    }


def _address(address) -> str | None:
    if address is None:
        return None
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
