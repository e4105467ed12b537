"""Property tests: what serialise writes, parse reads back; junk never escapes as anything
but a ParseError."""

import re
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wevoip.sip.errors import ParseError
from wevoip.sip.framing import PING, StreamFramer
from wevoip.sip.message import Headers, Request, Response, parse, serialise
from wevoip.sip.uri import URI, Address, parse_address, parse_uri

token = st.text(string.ascii_letters + string.digits + "-.!%*_+`'~", min_size=1, max_size=12)
word = st.text(string.ascii_letters + string.digits, min_size=1, max_size=10)
hostname = st.builds(".".join, st.lists(word, min_size=1, max_size=3))
ipv6 = st.ip_addresses(v=6).map(lambda ip: f"[{ip}]")
host = st.one_of(hostname, st.ip_addresses(v=4).map(str), ipv6)
param_value = st.one_of(st.none(), word)
params = st.lists(st.tuples(word, param_value), max_size=3).map(tuple)
user = st.text(string.ascii_letters + string.digits + "-_.!~*'()&=+$,;?/", min_size=1, max_size=12)
sip_uri = st.builds(URI, scheme=st.sampled_from(["sip", "sips"]), user=st.one_of(st.none(), user), host=host,
                    port=st.one_of(st.none(), st.integers(0, 65535)), params=params,
                    headers=st.lists(st.tuples(word, word), max_size=2).map(tuple))
tel_uri = st.builds(URI, scheme=st.just("tel"), user=st.text("0123456789-", min_size=1, max_size=15).map(lambda n: "+" + n),
                    params=params)
uri = st.one_of(sip_uri, tel_uri)
display = st.one_of(st.none(), st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20))
address = st.builds(Address, uri=uri, display_name=display, params=params)
value = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40).map(str.strip).filter(bool)
method = st.sampled_from(["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "MESSAGE", "X-CUSTOM"])
body = st.binary(max_size=200)


@st.composite
def messages(draw):
    via = f"SIP/2.0/{draw(st.sampled_from(['UDP', 'TCP', 'TLS', 'WSS']))} {draw(host)};branch=z9hG4bK{draw(word)}"
    name = draw(method)
    extra = draw(st.lists(st.tuples(token.filter(lambda n: n.lower() not in (
        "content-length", "l", "via", "v", "from", "f", "to", "t", "call-id", "i", "cseq", "max-forwards")), value),
        max_size=6))
    headers = Headers([("Via", via), ("From", str(draw(address).with_param("tag", draw(word)))),
                       ("To", str(draw(address))), ("Call-ID", draw(word)),
                       ("CSeq", f"{draw(st.integers(0, 2 ** 31 - 1))} {name}"), *extra])
    if draw(st.booleans()):
        return Request(name, draw(uri), headers, draw(body))
    return Response(draw(st.integers(100, 699)), draw(value), headers, draw(body))


@given(messages())
@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=300)
def test_parse_of_serialise_is_identity(message):
    assert parse(serialise(message)) == message


@given(address)
def test_addresses_and_uris_print_and_parse_back(value):
    assert parse_address(str(value)) == value
    assert parse_uri(str(value.uri)) == value.uri


@st.composite
def mutated(draw):
    data = bytearray(serialise(draw(messages())))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, max(0, len(data) - 1)))
        action = draw(st.sampled_from(["flip", "delete", "insert"]))
        if action == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif action == "delete":
            del data[at:at + draw(st.integers(1, 20))]
        else:
            data[at:at] = draw(st.sampled_from([b"\r\n", b";", b"<", b'"', b":", b",", b" ", b"\x00", b"\xff", b"[::"]))
    return bytes(data)


def _parse_or_parse_error(data):
    """Parsing, and reading every lazily parsed part, raises nothing but ParseError."""
    try:
        message = parse(data)
        for lazy in ("via", "from_", "to", "cseq", "uri"):
            getattr(message, lazy, None)
    except ParseError as error:
        assert error.reason and 400 <= error.status < 600


@given(st.one_of(st.binary(max_size=400), mutated()))
@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=500)
def test_junk_and_mutated_messages_only_ever_raise_parse_error(data):
    _parse_or_parse_error(data)


@given(st.lists(st.one_of(st.binary(max_size=60), st.just(b"\r\n"), st.just(b"\r\n\r\n"),
                          messages().map(serialise)), max_size=8))
@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=200)
def test_the_stream_framer_holds_only_what_it_cannot_yet_frame(chunks):
    framer = StreamFramer(max_message=4096)
    for chunk in chunks:
        try:
            for item in framer.feed(chunk):
                if item != PING:
                    _parse_or_parse_error(item)
        except ParseError:
            return
        assert framer.buffered <= 4096


@given(st.lists(st.one_of(st.binary(max_size=300), mutated()), min_size=1, max_size=5))
@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture], max_examples=200)
def test_the_core_never_raises_on_junk_and_answers_at_most_once_per_message(messages_in):
    from twisted.internet.task import Clock

    from wevoip.sip.core import SipCore
    from wevoip.sip.flow import Flow, FlowTable
    from wevoip.sip.headers import parse_addresses

    sent = []
    core = SipCore(Clock(), FlowTable())
    core.register("INVITE", lambda incoming: incoming.respond(
        200, headers=(("Contact", str(parse_addresses(incoming.request.headers.get_all("Contact"))[:1])),)))
    core.register("REGISTER", lambda incoming: incoming.respond(200, headers=(("X-To", str(incoming.request.uri)),)))
    flow = Flow("udp", ("192.0.2.1", 5060), ("127.0.0.1", 5060), sent.append)
    for data in messages_in:
        core.receive(data, flow)
    assert core.stats["handler_errors"] == 0
    assert len(sent) <= 2 * len(messages_in), "at most a 100 Trying and one answer per message"
    for data in sent:
        try:
            assert isinstance(parse(data), Response)
        except ParseError:
            # The answer to a malformed request copies what it got as written (RFC 4475
            # §3.1.2.4: the bad CSeq; §3.3.1: no From, To or Call-ID when it had none).
            assert re.match(rb"SIP/2\.0 (4\d\d|505) ", data) and b"\r\nVia: " in data
