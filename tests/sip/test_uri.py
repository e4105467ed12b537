"""SIP, SIPS and tel URIs, and the name-addr / addr-spec forms that carry them."""

import pytest

from wevoip.sip.errors import ParseError
from wevoip.sip.uri import URI, Address, parse_address, parse_params, parse_uri, quote, unquote, websocket_uri


def test_a_full_sip_uri_keeps_every_part_and_prints_back_the_same():
    text = "sip:alice%20x:secret@pbx.example.net:5080;transport=tcp;lr;maddr=10.0.0.1?subject=hi&priority=urgent"
    uri = parse_uri(text)
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port) == \
        ("sip", "alice%20x", "secret", "pbx.example.net", 5080)
    assert uri.params == (("transport", "tcp"), ("lr", None), ("maddr", "10.0.0.1"))
    assert uri.headers == (("subject", "hi"), ("priority", "urgent"))
    assert uri.param("TRANSPORT") == "tcp" and uri.has_param("lr") and uri.param("lr") is None
    assert str(uri) == text


def test_ipv6_references_and_sips():
    uri = parse_uri("SIPS:bob@[2001:db8::1]:5061;transport=tls")
    assert uri.scheme == "sips" and uri.secure
    assert uri.host == "[2001:db8::1]" and uri.host_bare == "2001:db8::1" and uri.port == 5061
    assert str(parse_uri("sip:[::1]")) == "sip:[::1]"


def test_users_may_hold_semicolons_and_question_marks_before_the_at():
    uri = parse_uri("sip:+1-212-555-1212;npdi;rn=+1212@gw.example.com;user=phone")
    assert uri.user == "+1-212-555-1212;npdi;rn=+1212" and uri.params == (("user", "phone"),)


def test_tel_uris():
    uri = parse_uri("tel:+1-201-555-0123;phone-context=example.com")
    assert (uri.scheme, uri.user, uri.host) == ("tel", "+1-201-555-0123", "")
    assert str(uri) == "tel:+1-201-555-0123;phone-context=example.com"


@pytest.mark.parametrize("text, reason", [
    ("http://example.com", "Unsupported URI scheme"),
    ("sip:", "Malformed URI"),
    ("sip:alice@", "Malformed URI host"),
    ("sip:a@host:99999", "Malformed URI port"),
    ("sip:a b@host", "Malformed URI user part"),
    ("sip:host;=x", "Malformed URI parameter"),
    ("sip:host?noequals", "Malformed URI header"),
    ("tel:hello", "Malformed tel URI"),
])
def test_bad_uris_say_what_is_wrong(text, reason):
    with pytest.raises(ParseError) as caught:
        parse_uri(text)
    assert caught.value.reason == reason


def test_name_addr_with_quoted_display_name_and_escapes():
    address = parse_address(r'"Alice \"Al\" Smith" <sip:alice@example.com;transport=udp>;tag=88a;expires=60')
    assert address.display_name == 'Alice "Al" Smith'
    assert address.uri.params == (("transport", "udp"),)
    assert address.tag == "88a" and address.param("expires") == "60"
    assert str(address) == r'"Alice \"Al\" Smith" <sip:alice@example.com;transport=udp>;tag=88a;expires=60'
    assert parse_address(str(address)) == address


def test_token_display_names_and_no_display_name():
    assert parse_address("Bob  Jones <sip:bob@b.example>").display_name == "Bob Jones"
    assert parse_address("<sip:bob@b.example>").display_name is None
    assert parse_address('"" <sip:bob@b.example>').display_name == ""


def test_addr_spec_parameters_belong_to_the_header_not_the_uri():
    address = parse_address("sip:carol@c.example;tag=abc")
    assert address.uri == URI("sip", "carol", "c.example")
    assert address.tag == "abc"


def test_quoted_header_parameters_may_hold_semicolons_and_angles():
    address = parse_address('<sip:d@d.example>;+sip.instance="<urn:uuid:1;2>";reg-id=1')
    assert address.param("+sip.instance") == '"<urn:uuid:1;2>"' and address.param("reg-id") == "1"
    assert parse_params(';a="x\\";y";b') == (("a", '"x\\";y"'), ("b", None))


@pytest.mark.parametrize("text, reason", [
    ('"unterminated <sip:a@b>', "Unterminated quoted string"),
    ('"Name" sip:a@b', "Display name without <URI>"),
    ("<sip:a@b", "Missing > after URI"),
    ("sip:a@b?x=y", "URI with headers or commas must be in <>"),
    ("Na@me <sip:a@b>", "Malformed display name"),
    ("<sip:a@b> junk", "Malformed header parameter"),
])
def test_bad_addresses_say_what_is_wrong(text, reason):
    with pytest.raises(ParseError) as caught:
        parse_address(text)
    assert caught.value.reason == reason


def test_with_param_replaces_in_place_or_appends():
    address = Address(parse_uri("sip:a@b"), None, (("tag", "1"), ("x", None)))
    assert address.with_param("TAG", "2").params == (("tag", "2"), ("x", None))
    assert address.with_param("q", "0.5").params[-1] == ("q", "0.5")
    assert quote('a"b\\c') == r'"a\"b\\c"' and unquote(quote('a"b\\c')) == 'a"b\\c'


def test_parsed_uris_are_kept_bounded_and_malformed_ones_fail_every_time():
    from wevoip.sip import uri as uri_module
    first = uri_module.parse_uri("sip:kept@example.com;transport=udp")
    assert uri_module.parse_uri("sip:kept@example.com;transport=udp") is first
    for attempt in range(2):
        with pytest.raises(ParseError, match="Malformed URI host"):
            uri_module.parse_uri("sip:kept@")
    for n in range(uri_module.PARSED_LIMIT + 10):
        uri_module.parse_uri(f"sip:user{n}@example.com")
    assert len(uri_module._PARSED) <= uri_module.PARSED_LIMIT
    assert uri_module.parse_uri("sip:kept@example.com;transport=udp") == first
    long_text = "sip:" + "a" * uri_module.PARSED_TEXT_LIMIT + "@example.com"
    assert uri_module.parse_uri(long_text).user == "a" * uri_module.PARSED_TEXT_LIMIT
    assert long_text not in uri_module._PARSED


@pytest.mark.parametrize("text, sent", [
    ("sip:x7k2@df7jal23ls0d.invalid;transport=wss", "sip:x7k2@df7jal23ls0d.invalid;transport=ws"),
    ("sip:x7k2@df7jal23ls0d.invalid;TRANSPORT=WSS;ob", "sip:x7k2@df7jal23ls0d.invalid;TRANSPORT=ws;ob"),
    ("sip:x7k2@df7jal23ls0d.invalid;transport=ws", "sip:x7k2@df7jal23ls0d.invalid;transport=ws"),
    ("sip:bob@192.0.2.7:5060;transport=tcp", "sip:bob@192.0.2.7:5060;transport=tcp"),
])
def test_a_websocket_uri_written_with_wss_is_accepted_and_sent_on_as_ws(text, sent):
    assert str(websocket_uri(parse_uri(text))) == sent
