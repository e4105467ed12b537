"""
The nodes of the platform and the address each takes node-to-node SIP on. Platform-wide,
like `node_secrets`: no ISP owns a node.
"""

from __future__ import annotations

from wevoip.store.database import Row, Tx
from wevoip.store.notify import publish

CHANNEL = "nodes"


async def announce_node(tx: Tx, name: str, sip_host: str, sip_port: int) -> None:
    """Write this node's address; the others re-read the table when the change commits."""
    await tx.execute("insert into nodes (name, sip_host, sip_port) values (%s, %s, %s)"
                     " on conflict (name) do update set sip_host = excluded.sip_host,"
                     " sip_port = excluded.sip_port, started_at = now()", (name, sip_host, sip_port))
    await publish(tx, CHANNEL, name)


async def list_nodes(tx: Tx) -> list[Row]:
    return await tx.fetch("select name, sip_host, sip_port, started_at from nodes order by name")
