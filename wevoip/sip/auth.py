"""
Who sent this request: a subscriber proven by digest, a carrier's trunk by its source
address, or nobody yet (challenge). Also which tenant it belongs to.

Tenant resolution (docs/ARCHITECTURE.md, "Tenant resolution", holds the same rules):

1. A request from a carrier gateway's source address (not a REGISTER) is trunk traffic:
   no digest; the tenant is found later from the number called.
2. A REGISTER's tenant is the one serving the Request-URI's domain, else the To domain;
   any other request's is the From domain's, else the Request-URI's.
3. When those are bare IP addresses: the realm and username of the credentials, if sent
   (the realm is a tenant's domain); if none were sent, the one tenant that has a user of
   that name (From/To user) is challenged for; for a name no tenant has, or several, a
   decoy tenant chosen by a keyed hash of the name, so the challenge tells nothing.
4. A domain name that no tenant serves is refused (403), without a challenge.

Failures are counted by `Defence`; the request that gets a source banned is not answered.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from twisted.logger import Logger

from wevoip.sip.defence import Defence
from wevoip.sip.digest import DigestAuthority, MalformedCredentials, Verdict, parse_credentials
from wevoip.sip.directory import Directory, Tenant, Trunk
from wevoip.sip.lockout import UserLocks

log = Logger(namespace="wevoip.sip.auth")

DECOY_REALM = "unknown.invalid"


@dataclass(frozen=True, slots=True)
class Subscriber:
    isp_id: int
    tenant_id: int
    subscriber_id: int
    username: str
    domain: str


@dataclass
class Decision:
    """Either who it is (`subscriber` or `trunk`), or what to answer, or drop it silently."""

    subscriber: Subscriber | None = None
    trunk: Trunk | None = None
    status: int = 0
    reason: str = ""
    headers: list[tuple[str, str]] | None = None
    drop: bool = False
    tenant: Tenant | None = None


@dataclass(frozen=True)
class Asked:
    """The parts of a request authentication looks at, already taken from the message."""

    method: str
    request_host: str
    from_user: str
    from_host: str
    to_user: str
    to_host: str
    authorization: tuple[str, ...]  # Authorization (REGISTER) or Proxy-Authorization values
    source: str                     # the packet's source IP address
    user_agent: str = ""            # chooses the challenges offered (DigestAuthority.offer)


_DOTTED = frozenset("0123456789.")


def is_address(host: str) -> bool:
    """Cheap for the usual domain name (no exception raised and caught per request)."""
    if ":" not in host and not _DOTTED.issuperset(host):
        return False
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


class Authenticator:
    def __init__(self, digest: DigestAuthority, directory: Directory, defence: Defence,
                 locks: UserLocks | None = None):
        self.digest = digest
        self.directory = directory
        self.defence = defence
        self.locks = locks

    async def authenticate(self, asked: Asked) -> Decision:
        register = asked.method == "REGISTER"
        if not register:
            trunk = await self.directory.trunk(asked.source)
            if trunk is not None:
                return Decision(trunk=trunk)
        hosts = (asked.request_host, asked.to_host) if register else (asked.from_host, asked.request_host)
        user = asked.to_user if register else asked.from_user
        tenant = None
        for host in hosts:
            if host and not is_address(host):
                tenant = await self.directory.tenant(host)
                if tenant is None:
                    return Decision(status=403, reason="Domain not served here")
                break
        credentials = None
        for value in asked.authorization:
            if value.strip().partition(" ")[0].lower() != "digest":
                continue    # another scheme is not ours to judge: challenge (RFC 4475 §3.3.7)
            try:
                parsed = parse_credentials(value)
            except MalformedCredentials as error:
                return self._failed(asked, user, 400, f"Bad credentials: {error}")
            if tenant is None or parsed.realm.lower() == tenant.domain:
                credentials = parsed
                break
        if tenant is None:
            realm = credentials.realm if credentials else await self.directory.bare_realm(user)
            tenant = await self.directory.tenant(realm) if realm else None
        realm = tenant.domain if tenant else DECOY_REALM
        agent = asked.user_agent
        if credentials is None:
            return self._challenge(register, realm, tenant, agent)
        row = await self.directory.credentials(realm, credentials.username)
        verdict = self.digest.check(credentials, asked.method, row)
        if verdict is Verdict.OK and self.locks is not None and self.locks.locked(row.subscriber_id) \
                and not self.defence.trusted(asked.source) and not await self.locks.admits(row.subscriber_id,
                                                                                          asked.source):
            log.warn("a right answer for locked SIP user {user}@{realm} from {source} refused as a wrong one",
                     user=row.username, realm=realm, source=asked.source)
            verdict = Verdict.BAD
        if verdict is Verdict.BAD:
            user = f"{credentials.username}@{realm}"
            decision = self._failed(asked, user, 0, "")
            if row is not None and self.locks is not None and self.defence.under_attack(user):
                failures, sources = self.defence.user_failures(user)
                try:
                    await self.locks.lock(row, realm, failures, sources)
                except Exception:
                    log.failure("locking SIP user {user} failed", user=user)
            return decision if decision.drop else self._challenge(register, realm, tenant, agent)
        if verdict is not Verdict.OK:
            return self._challenge(register, realm, tenant, agent, stale=True)
        self.defence.succeeded(asked.source)
        if register and self.locks is not None:
            self.locks.registered(row.subscriber_id, asked.source)
        return Decision(subscriber=Subscriber(row.isp_id, row.tenant_id, row.subscriber_id,
                                              row.username, realm), tenant=tenant)

    def _challenge(self, register: bool, realm: str, tenant: Tenant | None, agent: str = "", *,
                   stale: bool = False) -> Decision:
        name = "WWW-Authenticate" if register else "Proxy-Authenticate"
        status, reason = (401, "Unauthorized") if register else (407, "Proxy Authentication Required")
        return Decision(status=status, reason=reason, tenant=tenant, headers=[
            (name, value) for value in self.digest.challenges(realm, stale=stale, user_agent=agent)])

    def _failed(self, asked: Asked, user: str, status: int, reason: str) -> Decision:
        if self.defence.failed(asked.source, user):
            return Decision(drop=True)
        return Decision(status=status, reason=reason)
