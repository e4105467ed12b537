"""
SIP users locked after a distributed password guess (issue 12 point 13; the SIP side is
`wevoip/sip/lockout.py`): the ISP (or a customer, its own) sees which, and lifts a lock.
A new SIP password (`PUT .../sip-password`) lifts it too.
"""

from __future__ import annotations

from wevoip.store import siplocks, subscribers
from wevoip.store.errors import NotFound
from wevoip.web.api.routes import ID, STAMP, Call, api_route, record

_TEXT = {"type": "string"}
SIP_LOCK = record({"subscriber_id": ID, "tenant_id": ID, "customer_id": ID, "username": _TEXT, "domain": _TEXT,
                   "locked_at": STAMP, "locked_until": STAMP, "failures": {"type": "integer", "minimum": 0},
                   "reason": _TEXT})


@api_route("GET", "/isps/{isp_id}/sip-locks", scope="read", tag="subscribers", returns=SIP_LOCK, listing=True,
           customer_ok=True, summary="SIP users locked to their known addresses after a distributed password guess")
async def list_sip_locks(call: Call):
    limit, offset = call.page()
    return await call.tx(siplocks.list_locks, call.params["isp_id"], customer_id=call.principal.customer_id,
                         limit=limit, offset=offset)


@api_route("DELETE", "/isps/{isp_id}/subscribers/{subscriber_id}/sip-lock", scope="write", tag="subscribers",
           status=204, customer_ok=True, summary="Lift a subscriber's SIP guessing lock now")
async def delete_sip_lock(call: Call):
    async def work(tx):
        subscriber = await subscribers.get_subscriber(tx, call.params["isp_id"], call.params["subscriber_id"])
        call.principal.check_customer(subscriber["customer_id"])
        if not await siplocks.unlock_user(tx, subscriber["id"], call.params["isp_id"]):
            raise NotFound("sip_lock")
    return await call.tx(work)
