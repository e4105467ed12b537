"""The people of an ISP tree, with logins: its ISP admin, a customer admin and a subscriber."""

from __future__ import annotations

from dataclasses import dataclass

from tests.store.builders import Tree, build_tree
from tests.web.browser import Browser
from twisted.internet import reactor
from wevoip.credentials import hash_password
from wevoip.store import webusers

PASSWORD = "people-password-1"


@dataclass
class People:
    tree: Tree
    isp_admin: Browser
    customer_admin: Browser
    subscriber: Browser


async def people_of(site, namespace: str, **tree_options) -> People:
    tree = await build_tree(site.database, namespace, **tree_options)
    password_hash = await hash_password(reactor, PASSWORD)
    isp_id = tree.isp["id"]

    async def accounts(tx):
        await webusers.create_isp_admin(tx, isp_id, email=f"boss@{namespace}", full_name="Boss",
                                        password_hash=password_hash)
        await webusers.create_customer_admin(tx, isp_id, tree.customer["id"], email=f"it@{namespace}",
                                             password_hash=password_hash)
        await tx.execute("update subscribers set web_username = 'alice', web_password_hash = %s where id = %s",
                         (password_hash, tree.subscriber["id"]))
    await site.database.transact(accounts)
    isp_admin = await log_in(site, "/login", {"namespace": namespace, "email": f"boss@{namespace}"})
    customer_admin = await log_in(site, "/login/customer", {"namespace": namespace, "email": f"it@{namespace}"})
    subscriber = await log_in(site, "/login/subscriber", {"domain": tree.tenant["sip_domain"], "username": "alice"})
    return People(tree, isp_admin, customer_admin, subscriber)


async def log_in(site, path: str, fields: dict, password: str = PASSWORD) -> Browser:
    browser = Browser(site.base)
    page = await browser.submit(path, path, {**fields, "password": password})
    assert page.code == 200 and "Log out" in page, (path, page.code, page.error)
    return browser
