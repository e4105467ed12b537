"""
Platform-wide secrets shared by every node through the database.

A key one node makes must verify on every other (SIP digest nonces), so it cannot live in
one node's data directory; the first node to ask creates it, the rest read the same row.
"""

from __future__ import annotations

import secrets

from wevoip.store.database import Tx


async def shared_secret(tx: Tx, name: str, size: int = 32) -> bytes:
    await tx.execute("insert into node_secrets (name, value) values (%s, %s) on conflict do nothing",
                     (name, secrets.token_bytes(size)))
    return bytes(await tx.fetch_value("select value from node_secrets where name = %s", (name,)))
