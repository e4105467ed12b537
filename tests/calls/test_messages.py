"""What the B2BUA reads from the network's headers: untrusted, so nonsense reads as absent."""

import pytest

from wevoip.calls.machine import SessionTimer, Timer
from wevoip.calls.messages import (contact_for, is_reliable, rack_of, same_session, session_timer, timer_headers,
                                   too_brief)
from wevoip.sip.flow import Flow
from wevoip.sip.message import parse


def message(headers, start="INVITE sip:b@example.net SIP/2.0"):
    method = "INVITE" if start.startswith("SIP/") else start.split()[0]
    text = (f"{start}\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nFrom: <sip:a@example.net>;tag=1\r\n"
            f"To: <sip:b@example.net>\r\nCall-ID: x\r\nCSeq: 1 {method}\r\n{headers}Content-Length: 0\r\n\r\n")
    return parse(text.encode())


def test_a_session_timer_is_read_with_its_refresher_min_se_support_and_update():
    timer = session_timer(message("Session-Expires: 1800 ; Refresher=UAS\r\nMin-SE: 120\r\n"
                                  "Supported: 100rel, Timer\r\nAllow: INVITE, ACK, update\r\n"))
    assert timer == Timer(1800, "uas", 120, True, True)
    assert session_timer(message("x: 90\r\nRequire: timer\r\n")) == Timer(90, None, None, True, False)
    assert session_timer(None) is None


@pytest.mark.parametrize("value", ["abc", "-5", "0", "²", "99999999999", "", "1800;refresher=them"])
def test_nonsense_in_session_timer_headers_reads_as_absent(value):
    timer = session_timer(message(f"Session-Expires: {value}\r\nMin-SE: {value}\r\n"))
    assert timer.refresher is None    # 'them' is no refresher
    assert timer.interval == timer.min_se == (1800 if value.startswith("1800") else None)


@pytest.mark.parametrize("value, read", [("5 1 INVITE", 5), ("² 1 INVITE", None), ("", None), ("x", None)])
def test_a_rack_is_read_only_when_it_is_a_number(value, read):
    assert rack_of(message(f"RAck: {value}\r\n", "PRACK sip:b@example.net SIP/2.0")) == read


def test_a_provisional_is_reliable_only_with_a_readable_rseq():
    ringing = "SIP/2.0 180 Ringing"
    assert is_reliable(message("Require: 100rel\r\nRSeq: 7\r\n", ringing))
    assert not is_reliable(message("Require: 100rel\r\nRSeq: ²\r\n", ringing))
    assert not is_reliable(message("RSeq: 7\r\n", ringing))


def test_an_interval_below_min_se_is_too_brief():
    assert too_brief(message("Session-Expires: 89\r\n"), 90)
    assert not too_brief(message("Session-Expires: 90\r\n"), 90)
    assert not too_brief(message(""), 90)


def test_each_dialog_gets_its_own_side_of_the_timer():
    ours = SessionTimer(600, True, False, False)
    theirs = SessionTimer(600, False, True, True)
    assert timer_headers(ours, request=True, min_se=90) == (
        ("Session-Expires", "600;refresher=uac"), ("Supported", "timer"), ("Min-SE", "90"))
    assert timer_headers(theirs, request=True, min_se=90)[0] == ("Session-Expires", "600;refresher=uas")
    assert timer_headers(ours, request=False, min_se=90) == (("Session-Expires", "600;refresher=uas"),)
    assert timer_headers(theirs, request=False, min_se=90) == (
        ("Session-Expires", "600;refresher=uac"), ("Require", "timer"))
    assert timer_headers(None, request=False, min_se=90) == ()


def test_descriptions_differing_only_in_origin_and_name_are_the_same_session():
    early = b"v=0\r\no=desk 1 1 IN IP4 192.0.2.2\r\ns=-\r\nc=IN IP4 192.0.2.2\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n"
    other_fork = early.replace(b"o=desk 1 1", b"o=mobile 7 9").replace(b"s=-", b"s=Talk")
    assert same_session(early, other_fork)
    assert not same_session(early, early.replace(b"RTP/AVP 0", b"RTP/AVP 8"))
    assert not same_session(early, early.replace(b"5000", b"5002"))


class _Core:
    """What `contact_for` asks of the SIP core: our host:port on a flow."""

    @staticmethod
    def sent_by(flow):
        return f"{flow.local[0]}:{flow.local[1]}"


@pytest.mark.parametrize("transport, param", [("udp", ""), ("tcp", ";transport=tcp"), ("tls", ";transport=tls"),
                                              ("ws", ";transport=ws"), ("wss", ";transport=ws")])
def test_our_contact_names_websockets_ws_whether_secure_or_not(transport, param):
    """RFC 7118 §5.2 defines transport=ws alone for SIP URIs; WSS appears only in Via."""
    flow = Flow(transport, ("192.0.2.9", 50123), ("127.0.0.1", 5063), lambda data: None)
    assert contact_for(_Core(), flow) == f"<sip:b2bua@127.0.0.1:5063{param}>"
