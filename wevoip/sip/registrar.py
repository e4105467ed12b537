"""
The registrar's decisions (RFC 3261 §10.3) and its in-memory index of bindings, sans I/O.

A REGISTER that has been authenticated arrives here already taken apart (`RegisterRequest`):
which subscriber, Call-ID, CSeq, the contacts with their expires and q. `Registrar.register`
decides, changes the index at once (synchronously, so two REGISTERs for one address of
record can never interleave), and says what the store must write. The index is kept
compact, a slotted `Binding` per contact, since a node holds every phone of the platform.

Bindings expire on time: one timer on the injected clock, set for the earliest expiry in a
heap. Refreshing a binding pushes nothing; when an old heap entry comes due and the binding
has been refreshed meanwhile, it is pushed again for its new time, so the heap holds about
one entry per binding.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(slots=True)
class Binding:
    contact: str        # the Contact URI as the phone sent it
    key: str            # the same URI in the form used to compare (see `contact_key`)
    q: int              # thousandths, 0..1000
    call_id: str
    cseq: int
    expires_at: float   # seconds since the epoch, on the registrar's clock
    source: str         # "address:port" the REGISTER came from: where NAT lets us reach it
    transport: str      # udp, tcp, tls, ws or wss, as received
    instance: str = ""  # +sip.instance (RFC 5626), to recognise a phone whose contact changes
    reg_id: int = 0
    local: str = ""     # our listener it arrived on, for UDP answers from the same socket
    node: str = ""      # the node holding the connection of a stream transport
    flow: Any = None    # that connection, when it is this node's

    def expires_in(self, now: float) -> int:
        return max(0, int(self.expires_at - now + 0.5))


@dataclass(slots=True)
class Aor:
    isp_id: int
    tenant_id: int
    bindings: list[Binding] = field(default_factory=list)


@dataclass(frozen=True)
class ContactRequest:
    uri: str
    expires: int | None = None      # the contact's own expires parameter
    q: int | None = None            # thousandths
    instance: str = ""
    reg_id: int = 0


@dataclass(frozen=True)
class RegisterRequest:
    isp_id: int
    tenant_id: int
    subscriber_id: int
    call_id: str
    cseq: int
    expires: int | None             # the Expires header
    contacts: tuple[ContactRequest, ...]
    wildcard: bool = False          # Contact: *
    source: str = ""
    transport: str = "udp"
    local: str = ""
    flow: Any = None


@dataclass
class Outcome:
    status: int
    reason: str
    min_expires: int | None = None
    contacts: list[Binding] = field(default_factory=list)   # all current, for the 200
    saved: list[Binding] = field(default_factory=list)      # for the store to write
    removed: list[str] = field(default_factory=list)        # contacts for the store to delete


@dataclass(frozen=True)
class RegistrarPolicy:
    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 3600
    max_contacts: int = 10


def contact_key(uri: str) -> str:
    """
    RFC 3261 §19.1.4 in the part that matters for contacts: scheme, host and parameter
    names compare without case, the user part with case; parameter order does not matter.
    """
    scheme, _, rest = uri.partition(":")
    userinfo, at, hostpart = rest.rpartition("@")
    host, *params = hostpart.split(";")
    params = sorted(p.lower() for p in params if p)
    key = f"{scheme.lower()}:{userinfo}{at}{host.lower()}"
    return key + "".join(";" + p for p in params) if params else key


def contact_value(binding: Binding, now: float) -> str:
    """One Contact of the 200 OK: the URI, its remaining lifetime and its q if not 1."""
    value = f"<{binding.contact}>;expires={binding.expires_in(now)}"
    if binding.q != 1000:
        value += f";q={binding.q / 1000:.3f}".rstrip("0")
    return value


class Registrar:
    def __init__(self, clock, policy: RegistrarPolicy, *, node: str = "",
                 on_expired: Callable[[int, list[Binding]], Any] | None = None):
        self.clock = clock
        self.policy = policy
        self.node = node
        self.on_expired = on_expired
        self._aors: dict[int, Aor] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._timer = None

    def register(self, request: RegisterRequest) -> Outcome:
        now = self.clock.seconds()
        aor = self._aors.get(request.subscriber_id)
        current = list(aor.bindings) if aor else []
        if request.wildcard:
            outcome = self._remove_all(request, current)
        elif not request.contacts:
            outcome = Outcome(200, "OK")
        else:
            outcome = self._update(request, current, now)
        if outcome.status != 200:
            return outcome
        if request.contacts or request.wildcard:
            self._set(request.subscriber_id, request.isp_id, request.tenant_id, outcome.contacts)
        else:
            outcome.contacts = current
        return outcome

    def _remove_all(self, request: RegisterRequest, current: list[Binding]) -> Outcome:
        if request.contacts or request.expires != 0:
            return Outcome(400, "Contact * needs Expires: 0 and no other contact")
        for binding in current:
            if binding.call_id == request.call_id and binding.cseq >= request.cseq:
                return Outcome(400, "CSeq not above the binding's (RFC 3261 10.3)")
        return Outcome(200, "OK", contacts=[], removed=[b.contact for b in current])

    def _update(self, request: RegisterRequest, current: list[Binding], now: float) -> Outcome:
        policy = self.policy
        wanted: list[tuple[ContactRequest, int]] = []
        for contact in request.contacts:
            expires = contact.expires if contact.expires is not None else request.expires
            expires = policy.default_expires if expires is None else expires
            if 0 < expires < policy.min_expires:
                return Outcome(423, "Interval Too Brief", min_expires=policy.min_expires)
            wanted.append((contact, min(expires, policy.max_expires)))
        result = {binding.key: binding for binding in current}
        saved: list[Binding] = []
        removed: list[str] = []
        named: set[str] = set()
        added = False
        for contact, expires in wanted:
            key = contact_key(contact.uri)
            named.add(key)
            existing = result.get(key)
            if existing is None and contact.instance:
                existing = next((b for b in result.values()
                                 if b.instance == contact.instance and b.reg_id == contact.reg_id), None)
            if existing is not None:
                if existing.call_id == request.call_id and existing.cseq >= request.cseq:
                    return Outcome(400, "CSeq not above the binding's (RFC 3261 10.3)")
                del result[existing.key]
                if expires == 0:
                    removed.append(existing.contact)
                    continue
                if existing.contact != contact.uri:
                    removed.append(existing.contact)
            elif expires == 0:
                continue
            else:
                added = True
            binding = Binding(
                contact=contact.uri, key=key if key != contact.uri else contact.uri,
                q=1000 if contact.q is None else contact.q, call_id=request.call_id,
                cseq=request.cseq, expires_at=now + expires, source=request.source,
                transport=request.transport, instance=contact.instance, reg_id=contact.reg_id,
                local=request.local, node=self.node, flow=request.flow)
            result[key] = binding
            saved.append(binding)
        if added:
            self._drop_rebound(request, result, named, removed)
        if len(result) > policy.max_contacts:
            return Outcome(403, f"Too many contacts (at most {policy.max_contacts})")
        contacts = sorted(result.values(), key=lambda b: -b.q)
        return Outcome(200, "OK", contacts=contacts, saved=saved, removed=removed)

    @staticmethod
    def _drop_rebound(request: RegisterRequest, result: dict[str, Binding], named: set[str],
                      removed: list[str]) -> None:
        """
        A phone behind NAT whose public port changed registers its new address as a new
        contact; without `+sip.instance` only its Call-ID (RFC 3261 §10.2.4: the same for
        every REGISTER of a boot cycle) and its source address say it is the same phone.
        Its bindings from another port of that address that this REGISTER does not name
        are that phone's stale ones: replaced, not kept until they expire, so the contact
        limit counts phones, not rebindings. Only when the REGISTER adds a contact, so a
        refresh of some of a phone's several contacts keeps the others; and never from the
        same port, where a client adding contacts one REGISTER at a time sits.
        """
        host = request.source.rpartition(":")[0]
        for key, binding in list(result.items()):
            if (key not in named and binding.call_id == request.call_id and binding.source != request.source
                    and binding.source.rpartition(":")[0] == host):
                del result[key]
                removed.append(binding.contact)

    def _set(self, subscriber_id: int, isp_id: int, tenant_id: int, bindings: list[Binding]) -> None:
        old = self._aors.get(subscriber_id)
        known = {b.key: b.expires_at for b in old.bindings} if old else {}
        if not bindings:
            self._aors.pop(subscriber_id, None)
            return
        self._aors[subscriber_id] = Aor(isp_id, tenant_id, bindings)
        for binding in bindings:
            if binding.expires_at < known.get(binding.key, float("inf")):
                self._push(binding.expires_at, subscriber_id, binding.key)

    def replace(self, subscriber_id: int, isp_id: int, tenant_id: int, bindings: list[Binding]) -> None:
        """Take an AOR's bindings as another node (or the store at start) has them."""
        now = self.clock.seconds()
        mine = self._aors.get(subscriber_id)
        flows = {b.key: b.flow for b in mine.bindings if b.flow is not None} if mine else {}
        for binding in bindings:
            binding.flow = flows.get(binding.key) if binding.node == self.node else None
        self._set(subscriber_id, isp_id, tenant_id,
                  sorted((b for b in bindings if b.expires_at > now), key=lambda b: -b.q))

    def bindings(self, subscriber_id: int) -> list[Binding]:
        """The live contacts of a subscriber, highest q first."""
        aor = self._aors.get(subscriber_id)
        if aor is None:
            return []
        now = self.clock.seconds()
        return [b for b in aor.bindings if b.expires_at > now]

    def all_bindings(self):
        """(subscriber_id, binding) for every binding held, live or just due to expire."""
        for subscriber_id, aor in self._aors.items():
            for binding in aor.bindings:
                yield subscriber_id, binding

    def aor(self, subscriber_id: int) -> Aor | None:
        return self._aors.get(subscriber_id)

    def __len__(self) -> int:
        return sum(len(aor.bindings) for aor in self._aors.values())

    def _push(self, when: float, subscriber_id: int, key: str) -> None:
        heapq.heappush(self._heap, (when, subscriber_id, key))
        if self._timer is None or (self._timer.active() and self._timer.getTime() > when):
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self.clock.callLater(max(0.0, when - self.clock.seconds()), self._expire)

    def _expire(self) -> None:
        self._timer = None
        now = self.clock.seconds()
        gone: dict[int, list[Binding]] = {}
        while self._heap and self._heap[0][0] <= now:
            _, subscriber_id, key = heapq.heappop(self._heap)
            aor = self._aors.get(subscriber_id)
            binding = next((b for b in aor.bindings if b.key == key), None) if aor else None
            if binding is None:
                continue
            if binding.expires_at > now:
                heapq.heappush(self._heap, (binding.expires_at, subscriber_id, key))
                continue
            aor.bindings.remove(binding)
            if not aor.bindings:
                del self._aors[subscriber_id]
            gone.setdefault(subscriber_id, []).append(binding)
        if self._heap:
            self._timer = self.clock.callLater(max(0.0, self._heap[0][0] - now), self._expire)
        if self.on_expired is not None:
            for subscriber_id, bindings in gone.items():
                self.on_expired(subscriber_id, bindings)

    def stop(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
