"""Parsing and serialising whole SIP messages, and the errors bad ones get."""

import pytest

from wevoip.sip.core import SipCore
from wevoip.sip.errors import ParseError
from wevoip.sip.headers import CSeq
from wevoip.sip.message import (
    MAX_HEADER_COUNT, MAX_LINE_BYTES, MAX_MESSAGE_BYTES, Headers, Request, Response, parse,
    response_to, serialise)
from wevoip.sip.uri import parse_uri

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"v: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnashds8, SIP/2.0/UDP proxy.example;branch=z9hG4bK1\r\n"
    b"Max-Forwards: 70\r\n"
    b"t: Bob <sip:bob@biloxi.example.com>\r\n"
    b"f: \"Alice\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"i: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"m: <sip:alice@pc33.atlanta.example.com>\r\n"
    b"Subject: a long\r\n"
    b" \t folded subject\r\n"
    b"c: multipart/mixed;boundary=xyz\r\n"
    b"l: 48\r\n"
    b"\r\n"
    b"--xyz\r\nContent-Type: text/plain\r\n\r\nhi\r\n--xyz--\r\nEXTRA BYTES")


def test_compact_forms_folding_lists_and_a_multipart_body():
    message = parse(INVITE)
    assert isinstance(message, Request) and message.method == "INVITE"
    assert message.uri == parse_uri("sip:bob@biloxi.example.com")
    assert [via.host for via in message.via] == ["pc33.atlanta.example.com", "proxy.example"]
    assert message.top_via.branch == "z9hG4bKnashds8"
    assert message.from_.display_name == "Alice" and message.from_.tag == "1928301774"
    assert message.to.tag is None and message.to.display_name == "Bob"
    assert message.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert message.cseq == CSeq(314159, "INVITE") and message.max_forwards == 70
    assert message.headers.get("subject") == "a long folded subject"
    assert message.headers.get("Content-Type") == "multipart/mixed;boundary=xyz"
    assert message.body == b"--xyz\r\nContent-Type: text/plain\r\n\r\nhi\r\n--xyz--\r\n"
    assert "Content-Length" not in message.headers


def test_serialise_writes_full_names_and_a_content_length_from_the_body():
    data = serialise(parse(INVITE))
    assert data.startswith(b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\nVia: SIP/2.0/UDP pc33")
    assert b"\r\nCall-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n" in data
    assert data.endswith(b"Content-Length: 48\r\n\r\n--xyz\r\nContent-Type: text/plain\r\n\r\nhi\r\n--xyz--\r\n")
    assert parse(data) == parse(INVITE)


def test_a_response_and_the_response_to_a_request():
    request = parse(INVITE)
    ringing = response_to(request, 180, to_tag="b0b")
    assert ringing.reason == "Ringing" and ringing.to.tag == "b0b"
    assert ringing.headers.get_all("Via") == request.headers.get_all("Via")
    assert (ringing.call_id, ringing.cseq, ringing.from_) == (request.call_id, request.cseq, request.from_)
    assert "Contact" not in ringing.headers
    parsed = parse(bytes(ringing))
    assert isinstance(parsed, Response) and parsed == ringing
    assert response_to(request, 100, to_tag="b0b").to.tag is None
    tagged = response_to(request, 486, "Busy, really", to_tag="x")
    assert tagged.reason == "Busy, really"


def test_a_to_tag_already_present_is_kept():
    request = parse(INVITE.replace(b"t: Bob <sip:bob@biloxi.example.com>", b"t: <sip:bob@b>;tag=old"))
    assert response_to(request, 200, to_tag="new").to.tag == "old"


def test_line_feeds_alone_are_tolerated_and_body_taken_without_content_length():
    data = b"MESSAGE sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK2\nFrom: <sip:c@d>;tag=1\n" \
           b"To: <sip:a@b>\nCall-ID: x\nCSeq: 2 MESSAGE\n\nhello"
    message = parse(data)
    assert message.body == b"hello" and message.cseq.number == 2


HEAD = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK3\r\nFrom: <sip:c@d>;tag=1\r\n" \
       b"To: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 3 OPTIONS\r\n"


@pytest.mark.parametrize("data, reason, status, answerable", [
    (b"", "Malformed request line", 400, False),
    (b"OPTIONS sip:a@b SIP/3.0\r\n\r\n", "Version Not Supported", 505, False),
    (b"SIP/2.0 999999 OK\r\n\r\n", "Malformed status line", 400, False),
    (HEAD + b"Bad header\r\n\r\n", "Malformed header line", 400, False),
    (HEAD + b"Bad header: x\r\n\r\n", "Malformed header name", 400, False),
    (HEAD.replace(b"CSeq: 3 OPTIONS", b"CSeq: 3 INVITE") + b"\r\n",
     "CSeq method does not match the request", 400, True),
    (HEAD.replace(b"Via: SIP/2.0/UDP", b"Via: SIP/2.0/UDP bad host") + b"\r\n", "Malformed Via parameter", 400, True),
    (HEAD.replace(b"Call-ID: x\r\n", b"") + b"\r\n", "Missing Call-ID header", 400, True),
    (HEAD + b"Max-Forwards: many\r\n\r\n", "Malformed Max-Forwards header", 400, True),
    (HEAD + b"Content-Length: 10\r\n\r\nshort", "Content-Length larger than the body", 400, True),
    (HEAD + b"Content-Length: 1\r\nl: 2\r\n\r\nab", "Conflicting Content-Length headers", 400, True),
    (HEAD + b"\x00: x\r\n\r\n", "Malformed header name", 400, False),
    (b"x" * (MAX_MESSAGE_BYTES + 1), "Message Too Large", 513, False),
    (HEAD + b"X-Long: " + b"a" * MAX_LINE_BYTES + b"\r\n\r\n", "Header line too long", 400, False),
    (HEAD + b"X-Many: 1\r\n" * MAX_HEADER_COUNT + b"\r\n", "Too many headers", 400, False),
])
def test_malformed_messages_get_a_reason_and_the_headers_when_there_are_enough(data, reason, status, answerable):
    with pytest.raises(ParseError) as caught:
        parse(data)
    error = caught.value
    assert (error.reason, error.status) == (reason, status)
    assert (SipCore._error_response(error) is not None) == answerable
    if answerable:
        assert error.headers.get("Call-ID") in ("x", None)


def test_the_request_uri_from_and_to_are_checked_when_first_read():
    bad_uri = parse(HEAD.replace(b"sip:a@b SIP", b"mailto:a@b SIP") + b"\r\n")
    assert bad_uri.uri_text == "mailto:a@b"
    with pytest.raises(ParseError, match="Unsupported URI scheme"):
        bad_uri.uri
    two_tos = parse(HEAD + b"To: <sip:other@b>\r\n\r\n")
    with pytest.raises(ParseError, match="More than one To header"):
        two_tos.to
    assert bytes(bad_uri).startswith(b"OPTIONS mailto:a@b SIP/2.0\r\n")


def test_headers_are_ordered_case_insensitive_and_multi_valued():
    headers = Headers([("v", "one"), ("X-Custom", "a"), ("Via", "two"), ("x-custom", "b")])
    assert list(headers) == [("Via", "one"), ("X-Custom", "a"), ("Via", "two"), ("x-custom", "b")]
    assert headers.get_all("VIA") == ["one", "two"] and headers.get_all("X-CUSTOM") == ["a", "b"]
    headers.set("via", "three")
    assert list(headers)[0] == ("Via", "three") and headers.get_all("Via") == ["three"]
    headers.prepend("Record-Route", "<sip:p;lr>")
    assert list(headers)[0] == ("Record-Route", "<sip:p;lr>")
    headers.remove("X-Custom")
    assert "x-custom" not in headers and len(headers) == 2
    with pytest.raises(ValueError):
        headers.add("Subject", "injected\r\nVia: evil")


def test_structured_values_are_parsed_once_and_forgotten_when_headers_change():
    message = parse(INVITE)
    assert message.via is message.via
    message.headers.prepend("Via", "SIP/2.0/TCP new.example;branch=z9hG4bKnew")
    assert message.top_via.host == "new.example" and len(message.via) == 3


def test_messages_built_in_code_serialise_and_parse_back():
    request = Request("REGISTER", parse_uri("sip:example.com"), Headers([
        ("Via", "SIP/2.0/TLS [2001:db8::1]:5061;branch=z9hG4bKx;rport"), ("From", "<sip:a@example.com>;tag=t"),
        ("To", "<sip:a@example.com>"), ("Call-ID", "c"), ("CSeq", "1 REGISTER"),
        ("Contact", "<sip:a@[2001:db8::1]:5061;transport=tls>;expires=600")]))
    assert parse(bytes(request)) == request
    assert parse(bytes(request)).top_via.host_bare == "2001:db8::1"
