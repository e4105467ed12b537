"""
One console request as a handler sees it: the session, the brand, the form, and ways to
answer (a page, a redirect, a download).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wevoip.store.database import Row

PAGE_SIZE = 100
DEFAULT_BRAND = {"id": None, "brand_title": "WeVoIP", "name": "WeVoIP", "brand_primary": "#1f6feb",
                 "brand_accent": "#0b3d91", "has_logo": False}


class FormError(Exception):
    """A form value that is wrong before the store sees it; `field` names the input."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass
class Redirect:
    location: str


@dataclass
class Download:
    content_type: str
    filename: str
    body: bytes


@dataclass
class Asset:
    """A file shown inline: the stylesheet, the icon, an ISP's logo."""

    content_type: str
    body: bytes


@dataclass
class Message:
    """A page with a title and a sentence, sent with its own status (403, 404, 429 ...)."""

    status: int
    title: str
    text: str


@dataclass
class Ctx:
    request: Any
    console: Any            # the ConsoleApp: database, config, reactor, templates, sessions
    session: Row | None
    brand: Row
    params: dict[str, int]
    form: dict[str, str]
    files: dict[str, bytes]
    csrf: str
    error: str = ""
    error_field: str = ""
    status: int = 200
    set_cookies: list[bytes] = field(default_factory=list)

    @property
    def database(self):
        return self.console.database

    @property
    def isp_id(self) -> int:
        return self.session["isp_id"]

    @property
    def role(self) -> str | None:
        return self.session["role"] if self.session else None

    async def tx(self, work, *args, **kwargs):
        return await self.database.transact(work, *args, **kwargs)

    def value(self, name: str, default: str = "") -> str:
        return self.form.get(name, default).strip()

    def query(self, name: str) -> str:
        """A value from the query string (search forms use GET)."""
        values = self.request.args.get(name.encode(), [b""])
        return values[0].decode("utf-8", "replace").strip()

    def page_window(self, size: int = PAGE_SIZE) -> tuple[int, int]:
        """(limit, offset) of the list page asked for with ?page=N (from 1)."""
        text = self.query("page")
        number = int(text) if text.isdigit() and 0 < len(text) < 7 else 1
        return size + 1, (max(number, 1) - 1) * size

    def pager(self, rows: list, size: int = PAGE_SIZE) -> dict:
        """Drops the look-ahead row and gives the Table its previous/next links."""
        number = self.page_window(size)[1] // size + 1
        path = self.request.path.decode()
        links = {"previous": f"{path}?page={number - 1}" if number > 1 else "",
                 "next": f"{path}?page={number + 1}" if len(rows) > size else ""}
        del rows[size:]
        return links

    def number(self, name: str, *, required: bool = True) -> int | None:
        text = self.value(name)
        if not text and not required:
            return None
        if not text.isdigit() or len(text) > 9:
            raise FormError(name, "must be a whole number")
        return int(text)

    def checked(self, name: str) -> bool:
        return self.form.get(name) in ("on", "yes", "true", "1")

    def source(self) -> str:
        return self.request.getClientAddress().host

    def render(self, title: str, *sections, heading: str | None = None, narrow: bool = False,
               connect: str = "") -> bytes:
        return self.console.templates.page(self, title, sections, heading=heading, narrow=narrow, connect=connect)
