"""
The first start of a new platform: its administrator and a token for scripts.

Operators who provision by script set WEVOIP_ADMIN_PASSWORD and WEVOIP_ADMIN_TOKEN before
the first start; otherwise both are generated and shown once in the log, and only their
hashes are kept.
"""

from __future__ import annotations

from typing import Mapping

from twisted.logger import Logger

from wevoip.credentials import hash_password, new_secret
from wevoip.store.admins import create_api_token, create_platform_admin
from wevoip.store.database import Database, Tx

log = Logger(namespace="wevoip.firstrun")

ADMIN_USERNAME = "admin"
_FIRST_RUN_LOCK = 0x57655649_50000002
MIN_PASSWORD = 12
MIN_TOKEN = 32


class FirstRunError(Exception):
    """An environment variable meant for the first run holds an unusable value."""


def _from_environment(environ: Mapping[str, str], name: str, minimum: int, generate) -> tuple[str, bool]:
    value = environ.get(name, "")
    if not value:
        return generate(), True
    if len(value) < minimum:
        raise FirstRunError(f"{name} must be at least {minimum} characters")
    return value, False


async def _admin_count(tx: Tx) -> int:
    return await tx.fetch_value("select count(*) from platform_admins")


async def ensure_platform_admin(reactor, database: Database, environ: Mapping[str, str]) -> bool:
    """Create the administrator unless one exists; True when this call created it."""
    if await database.transact(_admin_count):
        return False
    password, password_made = _from_environment(environ, "WEVOIP_ADMIN_PASSWORD", MIN_PASSWORD, new_secret)
    token, token_made = _from_environment(environ, "WEVOIP_ADMIN_TOKEN", MIN_TOKEN,
                                          lambda: new_secret("wvp_", 32))
    password_hash = await hash_password(reactor, password)

    async def create(tx: Tx) -> bool:
        await tx.execute("select pg_advisory_xact_lock(%s)", (_FIRST_RUN_LOCK,))
        if await _admin_count(tx):
            return False
        await create_platform_admin(tx, ADMIN_USERNAME, password_hash)
        await create_api_token(tx, token, name="platform (first run)")
        return True

    if not await database.transact(create):
        return False
    lines = [f"platform administrator created: username {ADMIN_USERNAME!r}",
             f"  password:  {password if password_made else '(from WEVOIP_ADMIN_PASSWORD)'}",
             f"  API token: {token if token_made else '(from WEVOIP_ADMIN_TOKEN)'}"]
    if password_made or token_made:
        lines.append("  These are shown this once; only their hashes are kept.")
    log.warn("{banner}", banner="\n".join(lines))
    return True
