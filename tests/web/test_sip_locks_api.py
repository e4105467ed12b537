"""The ISP sees the SIP users a distributed password guess locked, and lifts a lock
(issue 12 point 13), over the API; a new SIP password lifts it too."""

import time

import pytest_twisted

from tests.web.flows import onboard
from wevoip.store import siplocks


async def _lock(database, made):
    subscriber = made["subscriber"]
    await database.transact(lambda tx: siplocks.lock_user(
        tx, isp_id=subscriber["isp_id"], tenant_id=subscriber["tenant_id"], subscriber_id=subscriber["id"],
        username=subscriber["username"], domain=made["tenant"]["sip_domain"], now=time.time(), seconds=600,
        failures=20, sources=["203.0.113.9", "203.0.113.10"]))


@pytest_twisted.ensureDeferred
async def test_the_isp_lists_and_lifts_sip_locks(api, database):
    made = await onboard(api, "locks.example.net")
    base, token, subscriber = made["base"], made["token"], made["subscriber"]
    code, listed, _ = await api.call("GET", f"{base}/sip-locks", token)
    assert code == 200 and listed["items"] == []
    await _lock(database, made)
    code, listed, _ = await api.call("GET", f"{base}/sip-locks", token)
    [lock] = listed["items"]
    assert (lock["subscriber_id"], lock["username"], lock["failures"]) == (subscriber["id"], "alice", 20)
    assert lock["domain"] == made["tenant"]["sip_domain"] and lock["customer_id"] == made["customer"]["id"]
    code, _, _ = await api.call("DELETE", f"{base}/subscribers/{subscriber['id']}/sip-lock", token)
    assert code == 204
    code, error, _ = await api.call("DELETE", f"{base}/subscribers/{subscriber['id']}/sip-lock", token)
    assert code == 404 and error["message"] == "sip_lock not found"
    await _lock(database, made)
    code, _, _ = await api.call("PUT", f"{base}/subscribers/{subscriber['id']}/sip-password", token,
                                json={"password": "battery-staple-42"})
    assert code == 200
    code, listed, _ = await api.call("GET", f"{base}/sip-locks", token)
    assert listed["items"] == [], "a new SIP password lifts the lock"
