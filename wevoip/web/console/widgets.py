"""
What a console page is made of, as data: sections that are tables or forms.

Handlers describe a page with these and one template (`page.html`) draws them all, so every
page looks alike, works without JavaScript and carries the CSRF token in every form.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Field:
    name: str
    label: str
    kind: str = "text"          # text, email, password, number, date, select, checkbox, file, color, hidden, textarea
    value: Any = ""
    options: list[tuple[str, str]] = field(default_factory=list)
    required: bool = False
    help: str = ""
    autocomplete: str = ""


@dataclass
class Form:
    action: str
    submit: str
    fields: list[Field] = field(default_factory=list)
    title: str = ""
    multipart: bool = False
    danger: bool = False
    method: str = "post"        # "get" for search forms, which change nothing and carry no token
    ids: str = ""               # a prefix for the inputs' ids, when two forms on a page share field names


@dataclass
class Button:
    """A one-button form in a table row, for actions that change something (POST only)."""

    label: str
    action: str
    fields: dict[str, str] = field(default_factory=dict)
    danger: bool = False


@dataclass
class Table:
    columns: list[tuple[str, str]]
    rows: list[dict[str, Any]]
    title: str = ""
    link: str = ""              # the column that links, to row["_href"]
    buttons: str = ""           # row key holding a list of Buttons
    empty: str = "Nothing here yet."
    csv: str = ""               # a link to the same table as CSV
    previous: str = ""          # links to the neighbouring pages of a long list
    next: str = ""


@dataclass
class Facts:
    """Label/value pairs, such as the result of a check or an object's details."""

    items: list[tuple[str, Any]]
    title: str = ""


@dataclass
class Text:
    text: str
    title: str = ""


@dataclass
class Links:
    """A row of links to the parts of one object, such as a tenant's pages."""

    links: list[tuple[str, str]]
    current: str = ""


@dataclass
class Figure:
    """A picture drawn on the server (an SVG chart), already escaped markup."""

    svg: Any
    title: str = ""


@dataclass
class Phone:
    """The phone console: its script registers `uri` over the WebSocket at `ws_scheme` and
    `ws_port` on the page's own host name, with the SIP password the subscriber types."""

    uri: str
    display_name: str
    ws_scheme: str
    ws_port: int
    title: str = ""
