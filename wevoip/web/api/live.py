"""
Calls in progress over the API: a tenant's WebRTC calls with the gateway's view of each
browser leg. Each node answers for the calls it carries (`wevoip.calls.live`), so every
row names its node; an ISP token sees its customers' calls, a customer token its own.
"""

from __future__ import annotations

from wevoip.web.api.routes import BOOLEAN, ID, STAMP, Call, api_route, nullable, record

_TEXT = {"type": "string"}
_COUNT = {"type": "integer", "minimum": 0}
_ADDRESS = nullable(_TEXT)
PACKETS = record({"packets": _COUNT, "octets": _COUNT})
SRTP_PACKETS = record({"packets": _COUNT, "octets": _COUNT, "refused": _COUNT})
LEG = record({
    "leg": {"enum": ["a", "b"]}, "side": {"enum": ["caller", "callee"]}, "port": ID,
    "ice": record({"state": {"enum": ["new", "connected", "nominated", "consent_lost"]}, "nominated": _ADDRESS,
                   "valid": {"type": "array", "items": _TEXT}, "consent": BOOLEAN,
                   "last_check_ms": nullable(_COUNT), "checks_answered": _COUNT, "checks_refused": _COUNT}),
    "dtls": record({"state": {"enum": ["new", "connecting", "connected", "failed", "closed"]},
                    "role": {"enum": ["client", "server", None]}, "handshake_done": BOOLEAN,
                    "cipher": nullable(_TEXT), "failure": nullable(_TEXT)}),
    "srtp": record({"active": BOOLEAN, "profile": nullable(_TEXT)}),
    "from_browser": SRTP_PACKETS, "to_browser": SRTP_PACKETS,
    "rtp": record({"from_browser": _COUNT, "to_browser": _COUNT}),
    "plain": record({"to_relay": PACKETS, "from_relay": PACKETS}),
    "dropped": {"type": "object", "additionalProperties": _COUNT},
})
WEBRTC_CALL = record({
    "node": _TEXT, "call_id": _TEXT, "call_ids": {"type": "array", "items": _TEXT},
    "customer_id": ID, "tenant_id": ID, "subscriber_id": nullable(ID), "callee_subscriber_id": nullable(ID),
    "direction": {"enum": ["outbound", "inbound", "internal"]}, "caller": _TEXT, "dialled": _TEXT,
    "started_at": STAMP, "answered_at": nullable(STAMP), "one_way": BOOLEAN,
    "legs": {"type": "array", "items": LEG},
})


@api_route("GET", "/isps/{isp_id}/webrtc-calls", scope="read",
           summary="WebRTC calls in progress on the node answering, with ICE, DTLS and SRTP state and packet "
                   "counters of each browser leg (each node answers for its own calls)",
           tag="calls", returns=WEBRTC_CALL, listing=True, customer_ok=True, query=("customer_id", "tenant_id"))
async def list_webrtc_calls(call: Call):
    limit, offset = call.page()
    customer_id = call.principal.customer_id or call.query_int("customer_id")
    tenant_id = call.query_int("tenant_id")
    calls = call.services.calls
    if calls is None:      # a web app without the calls service (a node's always has it)
        return []
    rows = calls.webrtc_calls(call.params["isp_id"], customer_id=customer_id, tenant_id=tenant_id)
    return rows[offset:offset + limit]
