"""
One side of a B2BUA call as an RFC 3261 §12 dialog: the identifiers, the route set, the
remote target and the CSeq counters, and the requests built from them.

Sans-IO: a `Dialog` turns what it knows into `Request`s and learns from the messages it is
shown. The A side is made from the caller's INVITE (we are its UAS); each B leg from the
INVITE the B2BUA sends (we are its UAC) and the responses that come back.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace

from wevoip.sip.errors import ParseError
from wevoip.sip.headers import parse_addresses
from wevoip.sip.message import Headers, Request, Response
from wevoip.sip.uri import URI, Address, without_param

# Headers a relayed message keeps: what the far end needs to understand its body, its
# session timer and its reliable provisionals. Everything else stays on its own side.
PASSED = ("Content-Type", "Content-Disposition", "Session-Expires", "Min-SE", "Require", "Supported",
          "Allow", "Event", "Info-Package", "Reason")


def new_tag() -> str:
    return secrets.token_hex(6)


def new_call_id(host: str) -> str:
    return f"{secrets.token_hex(12)}@{host}"


def contact_of(request_or_response: Request | Response) -> URI | None:
    try:
        contacts = parse_addresses(request_or_response.headers.get_all("Contact"))
    except ParseError:
        return None
    return contacts[0].uri if contacts else None


def untagged(address: Address) -> Address:
    return replace(address, params=without_param(address.params, "tag"))


def _tagged(address: Address, tag: str | None) -> str:
    return str(address.with_param("tag", tag)) if tag else str(address)


@dataclass
class Dialog:
    call_id: str
    local: Address              # our URI (From of what we send), without tag
    local_tag: str
    remote: Address             # theirs (To of what we send), without tag
    remote_tag: str | None
    remote_target: URI
    contact: str                # our Contact, as a header value
    local_cseq: int
    route_set: list[str] = field(default_factory=list)
    remote_cseq: int | None = None
    invite_cseq: int = 0        # of the INVITE that made the dialog, for its ACK and CANCEL
    established: bool = False   # the route set and tag are fixed by the first 2xx (§12.1.2)

    @classmethod
    def as_uas(cls, invite: Request, local_tag: str, contact: str) -> Dialog:
        """The caller's side: its From is our remote, its Contact our remote target, its
        Record-Route our route set in order (§12.1.1)."""
        return cls(invite.call_id, untagged(invite.to), local_tag, untagged(invite.from_), invite.from_.tag,
                   contact_of(invite) or invite.from_.uri, contact, secrets.randbelow(2 ** 16) + 1,
                   route_set=[str(address) for address in parse_addresses(invite.headers.get_all("Record-Route"))],
                   remote_cseq=invite.cseq.number, invite_cseq=invite.cseq.number, established=True)

    @classmethod
    def as_uac(cls, call_id: str, local: Address, remote: Address, target: URI, contact: str) -> Dialog:
        return cls(call_id, local, new_tag(), remote, None, target, contact, 1, invite_cseq=1)

    def invite(self, *, body: bytes = b"", headers: tuple[tuple[str, str], ...] = ()) -> Request:
        """The initial INVITE of a B leg (the Via is added when it is sent)."""
        return self._build("INVITE", self.invite_cseq, body, headers)

    def learn(self, response: Response) -> None:
        """A response to our INVITE: its tag and target; the route set from the first 2xx,
        reversed (§12.1.2). A leg is one dialog: a fork's other tags are not followed."""
        if self.established or response.status <= 100:
            return
        tag = response.to.tag
        if tag is None:
            return
        if self.remote_tag is None or response.status < 300:
            self.remote_tag = tag
        target = contact_of(response)
        if target is not None:
            self.remote_target = target
        try:
            self.route_set = [str(address) for address in
                              reversed(parse_addresses(response.headers.get_all("Record-Route")))]
        except ParseError:
            pass        # a callee's malformed Record-Route: the route set stays as it was
        if 200 <= response.status < 300:
            self.established = True

    def refresh_target(self, request: Request) -> None:
        """A re-INVITE or UPDATE may move the peer (§12.2.2)."""
        target = contact_of(request)
        if target is not None:
            self.remote_target = target

    def accepts(self, request: Request) -> bool:
        """§12.2.2: a CSeq lower than the last one is out of order (500)."""
        number = request.cseq.number
        if request.method in ("ACK", "CANCEL"):
            return True
        if self.remote_cseq is not None and number < self.remote_cseq:
            return False
        self.remote_cseq = number
        return True

    def request(self, method: str, *, body: bytes = b"", headers: tuple[tuple[str, str], ...] = ()) -> Request:
        if method in ("ACK", "CANCEL"):
            number = self.invite_cseq
        else:
            self.local_cseq += 1
            number = self.local_cseq
        return self._build(method, number, body, headers)

    def ack(self, cseq: int, *, body: bytes = b"", headers: tuple[tuple[str, str], ...] = ()) -> Request:
        """The ACK of a 2xx: its own transaction, but the CSeq number of its INVITE (§13.2.2.4)."""
        return self._build("ACK", cseq, body, headers)

    def _build(self, method: str, cseq: int, body: bytes, headers: tuple[tuple[str, str], ...]) -> Request:
        built = Headers([("From", _tagged(self.local, self.local_tag)),
                         ("To", _tagged(self.remote, self.remote_tag)),
                         ("Call-ID", self.call_id), ("CSeq", f"{cseq} {method}"), ("Max-Forwards", "70")])
        for route in self.route_set:
            built.add("Route", route)
        if method in ("INVITE", "UPDATE", "SUBSCRIBE", "REFER", "NOTIFY"):
            built.add("Contact", self.contact)
        for name, value in headers:
            built.add(name, value)
        return Request(method, self.remote_target, built, body)


def passed_headers(message: Request | Response, *, names: tuple[str, ...] = PASSED) -> tuple[tuple[str, str], ...]:
    return tuple((name, value) for name in names for value in message.headers.get_all(name))

