"""
The console's route table: every page declared once with its path and the roles that may
see it, so the gate can be the same for all and a test can walk every page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable

ROLES = ("platform", "isp", "customer", "subscriber")

Handler = Callable[[Any], Awaitable[Any]]


@dataclass(frozen=True)
class Page:
    method: str
    path: str                      # Klein's syntax: /isp/customers/<int:customer_id>
    handler: Handler
    roles: tuple[str, ...] | None  # None: anyone, logged in or not
    form_of: Handler | None = None  # the page drawn again, with the error, when a POST fails

    @property
    def path_params(self) -> list[str]:
        return [part.split(":")[-1].rstrip(">") for part in self.path.split("/") if part.startswith("<")]


PAGES: list[Page] = []


def page(path: str, *, roles: tuple[str, ...] | None, method: str = "GET", form_of: Handler | None = None):
    for role in roles or ():
        assert role in ROLES, role

    def register(handler: Handler) -> Handler:
        PAGES.append(Page(method, path, handler, roles, form_of))
        return handler
    return register


LOGIN_PATHS = {"platform": "/login/platform", "isp": "/login", "customer": "/login/customer",
               "subscriber": "/login/subscriber"}
HOME_PATHS = {"platform": "/platform", "isp": "/isp", "customer": "/tenants", "subscriber": "/me"}
