"""The torture corpus (tests/sip/torture/, RFC 4475 and RFC 5118 section 3) sans-IO: what
the parser makes of each message, and what the core answers it with (tests/sip/
test_torture_node.py sends the same messages to a real node over UDP and TCP)."""

import pytest
from twisted.internet.task import Clock

from tests.sip.corpus import cases
from wevoip.calls.b2bua import METHODS
from wevoip.sip.core import SipCore
from wevoip.sip.errors import ParseError
from wevoip.sip.flow import Flow, FlowTable
from wevoip.sip.headers import parse_addresses
from wevoip.sip.message import Request, Response, parse

CASES = cases()
# Answers that come from past the core: the node's authentication and the B2BUA's
# dialogs. Sans-IO, those requests must reach the handler, unanswered by the core.
APPLICATION = {"401", "403", "407", "481"}


def test_the_corpus_covers_rfc_4475_and_rfc_5118_section_3():
    names = {case.name for case in CASES}
    rfc4475 = {"wsinv", "intmeth", "esc01", "escnull", "esc02", "lwsdisp", "longreq", "dblreq", "semiuri",
               "transports", "mpart01", "unreason", "noreason", "badinv01", "clerr", "ncl", "scalar02",
               "scalarlg", "quotbal", "ltgtruri", "lwsruri", "lwsstart", "trws", "escruri", "baddate",
               "regbadct", "badaspec", "baddn", "badvers", "mismatch01", "mismatch02", "bigcode", "badbranch",
               "insuf", "unkscm", "novelsc", "unksm2", "bext01", "invut", "regaut01", "multi01", "mcl01",
               "bcast", "zeromf", "cparam01", "cparam02", "regescrt", "sdp01", "inv2543"}
    rfc5118 = {"ipv6-good", "ipv6-bad", "port-ambiguous", "port-unambiguous", "via-received-delim",
               "via-received-nodelim", "ipv6-sdp", "mult-ip-in-header", "ipv4-mapped-ipv6",
               "ipv6-bug-abnf-3-colons", "ipv6-correct-abnf-2-colons"}
    assert rfc4475 | rfc5118 <= names
    assert all(case.answer == "none" or case.answer.isdigit() for case in CASES)


def _read(message, part: str):
    if part == "contact":
        return parse_addresses(message.headers.get_all("Contact"))
    return getattr(message, part)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_the_parser_takes_or_refuses_each_message_as_the_rfcs_say(case):
    if case.parse != "ok":
        with pytest.raises(ParseError) as caught:
            parse(case.data)
        assert str(caught.value.status) == case.parse and caught.value.reason
        return
    message = parse(case.data)
    assert isinstance(message, Request) == case.is_request
    for part in ("uri", "from_", "to", "via", "cseq", "contact"):
        if part == "uri" and not case.is_request:
            continue
        if part in case.read:
            with pytest.raises(ParseError):
                _read(message, part)
        else:
            _read(message, part)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_the_core_answers_each_message_as_the_node_does(case):
    sent, reached = [], []
    core = SipCore(Clock(), FlowTable())
    for method in (*METHODS, "REGISTER"):
        core.register(method, reached.append)
    core.supported.extend(["100rel", "timer"])
    core.receive(case.data, Flow("udp", ("192.0.2.1", 5060), ("127.0.0.1", 5060), sent.append))
    # An answer to a malformed request copies its headers as written, so it may not parse:
    # its status is read from the status line.
    finals = [status for status in (data.split(b" ", 2)[1].decode() for data in sent) if status >= "200"]
    if case.answer in APPLICATION:
        assert finals == [] and len(reached) == 1
    elif case.answer == "none":
        assert sent == [] and reached == []
    else:
        assert finals == [case.answer] and reached == []


def test_the_details_of_some_answers():
    by_name = {case.name: case for case in CASES}

    def answer(name) -> Response:
        sent = []
        core = SipCore(Clock(), FlowTable())
        core.receive(by_name[name].data, Flow("udp", ("192.0.2.1", 5060), ("127.0.0.1", 5060), sent.append))
        data, = sent
        return data

    # The Via and the CSeq come back as they were written, malformed or not.
    assert b"\r\nVia: SIP/2.0/UDP 192.0.2.15;;,;,,\r\n" in answer("badinv01")
    assert b"\r\nCSeq: 36893488147419103232 REGISTER\r\n" in answer("scalar02")
    insuf = answer("insuf")
    assert insuf.startswith(b"SIP/2.0 400 Missing From header\r\n") and b"\r\nCSeq: 193942 INVITE\r\n" in insuf
    assert answer("badvers").startswith(b"SIP/2.0 505 Version Not Supported\r\n")
    bext = parse(answer("bext01"))
    assert bext.headers.get("Unsupported") == (
        "nothingSupportedHere, nothingSuppportedHere2, noProxiesSupportThis, nothingSupportedHere2")
    assert parse(answer("unkscm")).reason == "Unsupported URI Scheme: nobodyknowsthisscheme"
    # Unicode display names are read back as written, and answered with them.
    utf8 = parse(by_name["utf8-display-name"].data)
    assert utf8.to.display_name == "Jörg Müller 日本語 ☎"
    assert utf8.from_.display_name == 'Ünïcödé "Schlüssel" 🎉'
    assert "Jörg Müller".encode() in answer("utf8-display-name")
    assert b"caf\xe9\xff \xc3" in answer("bad-utf8-display-name")
    intmeth = parse(by_name["intmeth"].data)
    assert intmeth.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert intmeth.from_.param("fromParam''~+*_!.-%") == '"работающий"'
    wsinv = parse(by_name["wsinv"].data)
    assert (wsinv.cseq.number, wsinv.max_forwards, len(wsinv.via)) == (9, 68, 3)
    assert wsinv.from_.tag == "98asjd8" and wsinv.to.tag == "1918181833n"
    assert parse_addresses(wsinv.headers.get_all("Contact"))[0].param("q") == "0.33"
    assert wsinv.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert parse(by_name["dblreq"].data).body == b""
    assert parse(by_name["clshort"].data).body == b"hello"
    assert str(parse(by_name["port-ambiguous"].data).uri) == "sip:[2001:db8::10:5070]"
    assert parse(by_name["port-unambiguous"].data).uri.port == 5070
