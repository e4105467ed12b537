"""Via, CSeq and comma-separated list headers."""

import pytest

from wevoip.sip.errors import ParseError
from wevoip.sip.headers import CSeq, parse_addresses, parse_cseq, parse_tokens, parse_via, parse_vias, split_commas


def test_via_with_branch_rport_and_received():
    via = parse_via("SIP/2.0/UDP 192.0.2.4:5062;branch=z9hG4bK776asdhds;rport;received=198.51.100.7")
    assert (via.transport, via.host, via.port) == ("UDP", "192.0.2.4", 5062)
    assert via.branch == "z9hG4bK776asdhds" and via.rfc3261
    assert via.wants_rport and via.rport is None and via.received == "198.51.100.7"
    filled = via.with_param("rport", "40000").with_param("received", "203.0.113.9")
    assert str(filled) == "SIP/2.0/UDP 192.0.2.4:5062;branch=z9hG4bK776asdhds;rport=40000;received=203.0.113.9"
    assert filled.rport == 40000


def test_via_tolerates_spaces_lowercase_and_ipv6():
    via = parse_via("sip / 2.0 / tcp [2001:db8::9] : 5060 ; branch=1234")
    assert (via.transport, via.host_bare, via.port, via.branch) == ("TCP", "2001:db8::9", 5060, "1234")
    assert not via.rfc3261


@pytest.mark.parametrize("text", ["SIP/3.0/UDP host", "SIP/2.0/UDP", "SIP/2.0/UDP host:70000",
                                  "SIP/2.0/UDP host;rport=abc", "SIP/2.0/UDP host junk"])
def test_bad_vias(text):
    with pytest.raises(ParseError):
        parse_via(text)


def test_several_vias_in_one_line_and_across_lines_keep_their_order():
    vias = parse_vias(["SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/TCP b;branch=z9hG4bK2",
                       "SIP/2.0/TLS c;branch=z9hG4bK3"])
    assert [via.host for via in vias] == ["a", "b", "c"]


def test_comma_splitting_respects_quotes_and_angle_brackets():
    value = '"Doe, John" <sip:j,2@x;a=1>;q=0.5, <sip:k@y>, sip:z@w'
    assert split_commas(value) == ['"Doe, John" <sip:j,2@x;a=1>;q=0.5', "<sip:k@y>", "sip:z@w"]
    assert split_commas(r'"a\",b" <sip:a@b>') == [r'"a\",b" <sip:a@b>']
    assert [a.uri.user for a in parse_addresses([value])] == ["j,2", "k", "z"]
    assert parse_tokens(["INVITE, ACK", "OPTIONS"]) == ["INVITE", "ACK", "OPTIONS"]
    with pytest.raises(ParseError):
        split_commas('"open, <sip:a@b>')


def test_cseq():
    assert parse_cseq(" 4711  INVITE ") == CSeq(4711, "INVITE")
    assert str(CSeq(1, "REGISTER")) == "1 REGISTER"
    for bad in ["INVITE", "1", "x INVITE", "2147483648 INVITE", "1 INVITE extra"]:
        with pytest.raises(ParseError, match="Malformed CSeq header"):
            parse_cseq(bad)


@pytest.mark.parametrize("value, parts", [
    ("<sip:a@b;lr>", ["<sip:a@b;lr>"]),
    ("  <sip:a@b>;expires=60 ", ["<sip:a@b>;expires=60"]),
    ("<sip:a@b>>", ["<sip:a@b>>"]),
    ("<sip:a@b>, <sip:c@d>", ["<sip:a@b>", "<sip:c@d>"]),
    ('"x, y" <sip:a@b>', ['"x, y" <sip:a@b>']),
])
def test_split_commas_one_or_many_name_addrs(value, parts):
    assert split_commas(value) == parts


@pytest.mark.parametrize("value", ["<sip:a@b", "<sip:a@b>;x=<y", '"open <sip:a@b>'])
def test_split_commas_reports_unbalanced_brackets(value):
    with pytest.raises(ParseError, match="Unbalanced"):
        split_commas(value)
