"""
Session cookies: HttpOnly, SameSite=Lax, Secure when the console is reached over HTTPS.

The cookie carries 32 random bytes; PostgreSQL keeps only their SHA-256 with the role, the
account and a CSRF token (`wevoip/store/sessions.py`), so a session survives a restart,
works on every node, and a stolen database does not hold usable session ids. Visitors
without a session get a CSRF cookie of their own (double-submit) for the login and signup
forms.
"""

from __future__ import annotations

import datetime
import hmac
import secrets

from wevoip.config import Config
from wevoip.credentials import token_digest
from wevoip.store import sessions as stored
from wevoip.store.database import Row

SESSION_COOKIE = b"wevoip_session"
CSRF_COOKIE = b"wevoip_csrf"


class Sessions:
    def __init__(self, config: Config):
        self.config = config

    def secure(self, request) -> bool:
        return request.isSecure() or self.config.web.public_url.startswith("https://")

    def cookie(self, request, name: bytes, value: str, max_age: int | None) -> bytes:
        parts = [name + b"=" + value.encode(), b"Path=/", b"HttpOnly", b"SameSite=Lax"]
        if max_age is not None:
            parts.append(b"Max-Age=%d" % max_age)
        if self.secure(request):
            parts.append(b"Secure")
        return b"; ".join(parts)

    async def current(self, tx, request) -> Row | None:
        token = (request.getCookie(SESSION_COOKIE) or b"").decode("ascii", "replace")
        if not token or len(token) > 100:
            return None
        idle = datetime.timedelta(minutes=self.config.web.session_idle_minutes)
        return await stored.live_session(tx, token_digest(token), idle)

    async def begin(self, ctx, role: str, **owner) -> Row:
        """A new session (ending the visitor's current one, so a fixed id is never reused)."""
        await self.end(ctx)
        token = secrets.token_urlsafe(32)
        lifetime = datetime.timedelta(hours=self.config.web.session_hours)
        row = await ctx.tx(stored.create_session, token_digest(token), role, secrets.token_urlsafe(32),
                           lifetime, **owner)
        ctx.set_cookies.append(self.cookie(ctx.request, SESSION_COOKIE, token, int(lifetime.total_seconds())))
        ctx.session = row
        return row

    async def end(self, ctx) -> None:
        token = (ctx.request.getCookie(SESSION_COOKIE) or b"").decode("ascii", "replace")
        if token:
            await ctx.tx(stored.end_session, token_digest(token))
            ctx.set_cookies.append(self.cookie(ctx.request, SESSION_COOKIE, "", 0))
        ctx.session = None

    def visitor_csrf(self, request, set_cookies: list[bytes]) -> str:
        value = (request.getCookie(CSRF_COOKIE) or b"").decode("ascii", "replace")
        if len(value) < 32 or len(value) > 64:
            value = secrets.token_urlsafe(32)
            set_cookies.append(self.cookie(request, CSRF_COOKIE, value, None))
        return value

    @staticmethod
    def csrf_matches(expected: str, given: str) -> bool:
        return bool(expected) and hmac.compare_digest(expected.encode(), given.encode())
