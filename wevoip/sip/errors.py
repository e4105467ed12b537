"""
What goes wrong with what a peer sent.

A `ParseError`'s reason is written to be a SIP reason phrase ("Malformed Via header"), so
the core can answer 400 with it. When the start line and headers were read, `headers`
holds them: enough, for a request with Via, From, To, Call-ID and CSeq, to build that 400.
"""

from __future__ import annotations

from typing import Any


class ParseError(ValueError):
    def __init__(self, reason: str, *, status: int = 400, headers: Any = None, is_request: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.headers = headers
        self.is_request = is_request
