"""Cutting TCP/TLS byte streams into messages, with RFC 5626 keep-alives."""

import pytest

from wevoip.sip.framing import PING, FramingError, StreamFramer
from wevoip.sip.message import parse

MESSAGE = (b"MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nFrom: <sip:c@d>;tag=1\r\n"
           b"To: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 MESSAGE\r\nl: 5\r\n\r\nhello")


def test_messages_split_across_and_packed_into_reads():
    framer = StreamFramer()
    stream = MESSAGE + MESSAGE.replace(b"hello", b"HELLO")
    out = []
    for index in range(0, len(stream), 7):
        out += framer.feed(stream[index:index + 7])
    assert out == [MESSAGE, MESSAGE.replace(b"hello", b"HELLO")]
    assert parse(out[1]).body == b"HELLO" and framer.buffered == 0
    assert StreamFramer().feed(stream) == out


def test_a_double_crlf_is_a_ping_and_a_single_crlf_is_skipped():
    framer = StreamFramer()
    assert framer.feed(b"\r\n\r\n") == [PING]
    assert framer.feed(b"\r\n") == []
    assert framer.feed(b"\r\n") == [PING]
    assert framer.feed(b"\r\n" + MESSAGE + b"\r\n\r\n") == [MESSAGE, PING]
    assert framer.feed(b"\r\n") == [] and framer.feed(MESSAGE) == [MESSAGE]


def test_a_message_without_content_length_has_no_body():
    head = MESSAGE.replace(b"l: 5\r\n", b"")[:-5]
    assert StreamFramer().feed(head + b"OPTIONS") == [head]


def test_the_buffer_is_bounded():
    framer = StreamFramer(max_message=1000)
    framer.feed(b"OPTIONS sip:a@b SIP/2.0\r\nX: " + b"a" * 900)
    with pytest.raises(FramingError) as caught:
        framer.feed(b"a" * 200)
    assert caught.value.status == 513
    with pytest.raises(FramingError, match="Message Too Large"):
        StreamFramer(max_message=1000).feed(MESSAGE.replace(b"l: 5", b"l: 5000"))
    with pytest.raises(FramingError, match="Malformed Content-Length"):
        StreamFramer().feed(MESSAGE.replace(b"l: 5", b"l: -5"))
