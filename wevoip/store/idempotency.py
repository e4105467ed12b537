"""Responses kept for Idempotency-Key retries, per API token (so never across ISPs)."""

from __future__ import annotations

import json

from wevoip.store.database import Row, Tx

KEPT = "24 hours"


async def find_response(tx: Tx, token_id: int, key: str) -> Row | None:
    return await tx.fetch_one(
        "select * from idempotency_keys where token_id = %s and key = %s"
        " and created_at > now() - %s::interval", (token_id, key, KEPT))


async def keep_response(tx: Tx, token_id: int, key: str, request_sha256: bytes, status: int,
                        response_json: bytes) -> None:
    await tx.execute("delete from idempotency_keys where token_id = %s and created_at <= now() - %s::interval",
                     (token_id, KEPT))
    await tx.execute(
        "insert into idempotency_keys (token_id, key, request_sha256, status, response)"
        " values (%s, %s, %s, %s, %s)",
        (token_id, key, request_sha256, status, json.dumps(json.loads(response_json))))
