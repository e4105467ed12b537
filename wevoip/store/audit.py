"""The audit trail of an ISP's consoles: who did what to which object, from where."""

from __future__ import annotations

from wevoip.store.database import Row, Tx
from wevoip.store.rows import insert_row


async def record(tx: Tx, isp_id: int, *, actor: str, action: str, target: str = "", source: str = "") -> Row:
    return await insert_row(tx, "audit_trail", {"isp_id": isp_id, "actor": actor[:300], "action": action,
                                                "target": target[:300], "source": source[:100]})


async def list_audit(tx: Tx, isp_id: int, *, limit: int = 100) -> list[Row]:
    return await tx.fetch("select * from audit_trail where isp_id = %s order by id desc limit %s",
                          (isp_id, limit))
