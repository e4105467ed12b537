"""
A small SIP user agent over a secure WebSocket (RFC 7118) for asyncio, written for the
tests from the RFCs (not from the node's code): a client WebSocket (wsproto) with the `sip`
subprotocol over TLS, requests and responses as text, digest (RFC 2617 MD5 with qop=auth)
for the 407 a call first gets, and the INVITE transaction's ACKs. It is the signalling half
of the non-browser WebRTC stack in test_aiortc_calls.py (aiortc does the media).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import ssl

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, BytesMessage, CloseConnection, Request, TextMessage

CONTACT_HOST = "df7jal23ls0d.invalid"      # RFC 7118's example: a WebSocket client has no address to give


class Message:
    """A SIP message as text: its first line, headers in order (names as written) and body."""

    def __init__(self, text: str):
        head, _, self.body = text.partition("\r\n\r\n")
        lines = head.split("\r\n")
        self.first = lines[0]
        self.headers = [tuple(part.strip() for part in line.split(":", 1)) for line in lines[1:] if ":" in line]

    @property
    def status(self) -> int | None:
        match = re.match(r"SIP/2\.0 (\d{3}) ", self.first)
        return int(match.group(1)) if match else None

    @property
    def method(self) -> str | None:
        return None if self.first.startswith("SIP/2.0") else self.first.split(" ", 1)[0]

    def get(self, name: str) -> str | None:
        return next(iter(self.all(name)), None)

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _digest_params(challenge: str) -> dict[str, str]:
    return {key.lower(): value.strip('"') for key, value in
            re.findall(r'(\w+)=("[^"]*"|[^,\s]+)', challenge.partition(" ")[2])}


class WebSocketPhone:
    """One subscriber over WSS; `calls` hears requests the node sends us (its BYE)."""

    def __init__(self, host: str, port: int, user: str, domain: str, password: str):
        self.host, self.port, self.user, self.domain, self.password = host, port, user, domain, password
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.responses: asyncio.Queue[Message] = asyncio.Queue()
        self.requests: asyncio.Queue[Message] = asyncio.Queue()
        self.cseq = 0
        self.subprotocol: str | None = None

    async def connect(self) -> None:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE   # the node's test certificate
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, ssl=context)
        self.writer.write(self.ws.send(Request(host=f"{self.host}:{self.port}", target="/", subprotocols=["sip"])))
        accepted = asyncio.get_running_loop().create_future()
        self._reading = asyncio.create_task(self._read(accepted))
        self.subprotocol = await asyncio.wait_for(accepted, 10)

    async def _read(self, accepted: asyncio.Future) -> None:
        text = ""
        while True:
            data = await self.reader.read(65536)
            if not data:
                return
            self.ws.receive_data(data)
            for event in self.ws.events():
                if isinstance(event, AcceptConnection):
                    accepted.set_result(event.subprotocol)
                elif isinstance(event, (TextMessage, BytesMessage)):
                    text += event.data if isinstance(event, TextMessage) else bytes(event.data).decode()
                    if event.message_finished:
                        message, text = Message(text), ""
                        await (self.requests if message.method else self.responses).put(message)
                elif isinstance(event, CloseConnection):
                    return

    def send(self, text: str) -> None:
        self.writer.write(self.ws.send(TextMessage(data=text)))

    async def close(self) -> None:
        self._reading.cancel()
        self.writer.close()

    # -- requests and responses ----------------------------------------------------------

    def request(self, method: str, uri: str, call_id: str, *, to: str, from_tag: str, cseq: int,
                branch: str | None = None, body: str = "", extra: tuple[tuple[str, str], ...] = ()) -> str:
        headers = [("Via", f"SIP/2.0/WSS {CONTACT_HOST};branch={branch or 'z9hG4bK' + secrets.token_hex(8)}"),
                   ("Max-Forwards", "70"), ("From", f"<sip:{self.user}@{self.domain}>;tag={from_tag}"),
                   ("To", to), ("Call-ID", call_id), ("CSeq", f"{cseq} {method}"),
                   ("Contact", f"<sip:{self.user}@{CONTACT_HOST};transport=ws>"), *extra]
        if body:
            headers.append(("Content-Type", "application/sdp"))
        headers.append(("Content-Length", str(len(body.encode()))))
        return f"{method} {uri} SIP/2.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n" + body

    def respond(self, request: Message, status: int, reason: str) -> None:
        copied = [(key, value) for key, value in request.headers
                  if key.lower() in ("via", "from", "to", "call-id", "cseq")]
        self.send(f"SIP/2.0 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in copied)
                  + "Content-Length: 0\r\n\r\n")

    async def final(self, method: str, timeout: float = 20.0) -> Message:
        """The next final response to a `method` request (provisionals and strays skipped)."""
        while True:
            response = await asyncio.wait_for(self.responses.get(), timeout)
            if response.status >= 200 and (response.get("CSeq") or "").endswith(f" {method}"):
                return response

    def _authorisation(self, challenge: str, method: str, uri: str) -> str:
        params = _digest_params(challenge)
        realm, nonce, cnonce, nc = params["realm"], params["nonce"], secrets.token_hex(8), "00000001"
        ha1, ha2 = _md5(f"{self.user}:{realm}:{self.password}"), _md5(f"{method}:{uri}")
        response = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        return (f'Digest username="{self.user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
                f'response="{response}", algorithm=MD5, qop=auth, nc={nc}, cnonce="{cnonce}"')

    async def invite(self, number: str, sdp: str) -> "Dialog":
        """An INVITE answered 2xx (after the node's 407), ACKed; raises on any other answer."""
        uri, call_id, tag = f"sip:{number}@{self.domain}", secrets.token_hex(10), secrets.token_hex(4)
        to, extra = f"<sip:{number}@{self.domain}>", ()
        for cseq in (1, 2):
            branch = "z9hG4bK" + secrets.token_hex(8)
            self.send(self.request("INVITE", uri, call_id, to=to, from_tag=tag, cseq=cseq, branch=branch, body=sdp,
                                   extra=extra))
            response = await self.final("INVITE")
            if response.status < 300:
                dialog = Dialog(self, response, uri, call_id, tag, cseq)
                dialog.ack()
                return dialog
            # RFC 3261 §17.1.1.3: a non-2xx final is ACKed in its transaction (same branch).
            self.send(self.request("ACK", uri, call_id, to=response.get("To"), from_tag=tag, cseq=cseq,
                                   branch=branch))
            challenge = response.get("Proxy-Authenticate")
            if response.status != 407 or challenge is None or cseq == 2:
                raise AssertionError(f"INVITE answered {response.first}")
            extra = (("Proxy-Authorization", self._authorisation(challenge, "INVITE", uri)),)
        raise AssertionError("unreachable")


class Dialog:
    """The call's dialog from its 2xx: ACK, BYE, and the peer's BYE answered."""

    def __init__(self, phone: WebSocketPhone, ok: Message, uri: str, call_id: str, tag: str, cseq: int):
        self.phone, self.ok, self.call_id, self.tag, self.cseq = phone, ok, call_id, tag, cseq
        self.to = ok.get("To")
        contact = re.search(r"<([^>]+)>", ok.get("Contact") or "")
        self.remote_target = contact.group(1) if contact else uri
        self.route = list(reversed(ok.all("Record-Route")))

    def _in_dialog(self, method: str, cseq: int) -> str:
        extra = tuple(("Route", route) for route in self.route)
        return self.phone.request(method, self.remote_target, self.call_id, to=self.to, from_tag=self.tag,
                                  cseq=cseq, extra=extra)

    def ack(self) -> None:
        self.phone.send(self._in_dialog("ACK", self.cseq))

    async def bye(self) -> Message:
        self.cseq += 1
        self.phone.send(self._in_dialog("BYE", self.cseq))
        return await self.phone.final("BYE")

    async def their_bye(self, timeout: float) -> Message:
        """The node's BYE for this call, answered 200."""
        while True:
            request = await asyncio.wait_for(self.phone.requests.get(), timeout)
            if request.method == "BYE" and request.get("Call-ID") == self.call_id:
                self.phone.respond(request, 200, "OK")
                return request
            self.phone.respond(request, 481, "Call/Transaction Does Not Exist")
