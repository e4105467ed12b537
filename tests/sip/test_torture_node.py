"""The torture corpus (tests/sip/torture/) from outside: every message sent to a real
`twistd wevoip` over UDP and over TCP, each answered as its file says (or not at all),
and the node still serving OPTIONS and REGISTER afterwards."""

import itertools
import random
import re
import shutil
import socket
import time

import pytest
import pytest_twisted
from twisted.internet import defer, threads

from tests.fuzzing import mutate
from tests.node import Node
from tests.pg import reachable_tmpdir
from tests.sip.corpus import Case, cases
from tests.sip.test_node_sip import options

CASES = cases()
QUIET = 0.5     # how long "no answer" is waited for
_BRANCH = re.compile(rb"branch(\s*=\s*)z9hG4bK(?=[^\s;,])")
_CALL_ID = re.compile(rb"^(Call-ID|i)([ \t]*:[ \t]*)", re.I | re.M)
_sends = itertools.count()


def fresh(data: bytes) -> bytes:
    """The message as a new transaction of a new call: the RFCs' messages share branches
    (z9hG4bKkdjuw) and Call-IDs, and each is sent here over UDP, over TCP and once more,
    which the node would rightly take for retransmissions and merged requests (482). A
    branch that is the magic cookie alone (badbranch) is left as it is."""
    token = f"t{next(_sends)}x".encode()
    data = _BRANCH.sub(lambda match: b"branch" + match.group(1) + b"z9hG4bK" + token, data)
    return _CALL_ID.sub(lambda match: match.group(1) + match.group(2) + token, data)


def torture_node_config(node: Node) -> str:
    """Every transport on loopback; the per-source rate limit raised, since every message
    here comes from 127.0.0.1 (the limit has its own tests in test_defence.py)."""
    return node.default_config(sip=True) + "[sip_security]\nrequests_per_second = 100000\nrequest_burst = 100000\n"


@pytest.fixture(scope="module")
def node():
    folder = reachable_tmpdir("wevoip-test-torture-")
    running = Node(folder, sip=True)
    running.config_path.write_text(torture_node_config(running))
    running.start()
    try:
        health = pytest_twisted.blockon(defer.ensureDeferred(running.wait_ready()))
    except AssertionError:
        pytest_twisted.blockon(defer.ensureDeferred(running.stop()))
        raise
    yield running, health
    pytest_twisted.blockon(defer.ensureDeferred(running.stop()))
    shutil.rmtree(folder, ignore_errors=True)


def status_of(data: bytes) -> int:
    """The status of an answer, from its status line: an answer to a malformed request
    copies the request's headers as written, so the whole of it need not parse."""
    assert data.startswith(b"SIP/2.0 "), data[:200]
    return int(data.split(b" ", 2)[1])


def udp_answers(port: int, data: bytes, quiet: float = QUIET, source: str = "127.0.0.1") -> list[bytes]:
    """Every datagram that comes back until a final answer (and `quiet` more seconds when
    none is expected, or to see that nothing follows it)."""
    answers = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.bind((source, 0))
        client.sendto(data, ("127.0.0.1", port))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            client.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                answers.append(client.recv(65535))
            except socket.timeout:
                break
            if status_of(answers[-1]) >= 200:
                deadline = time.monotonic() + quiet
    return answers


def tcp_answers(port: int, data: bytes, quiet: float = QUIET, source: str = "127.0.0.1") -> tuple[list[bytes], bool]:
    """The messages that come back on one connection until a final answer, and whether
    the node closed the connection."""
    answers, buffer, closed = [], b"", False
    with socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0)) as client:
        client.sendall(data)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            client.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = client.recv(65535)
            except socket.timeout:
                break
            if not chunk:
                closed = True
                break
            buffer += chunk
            while b"\r\n\r\n" in buffer:
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                answers.append(head + b"\r\n\r\n")
                if status_of(answers[-1]) >= 200:
                    deadline = time.monotonic() + quiet
    return answers, closed


def finals(answers: list[bytes]) -> list[str]:
    return [str(status) for status in map(status_of, answers) if status >= 200]


@pytest.mark.parametrize("case", [case for case in CASES if "udp" in case.transports], ids=lambda case: case.name)
@pytest_twisted.ensureDeferred
async def test_each_torture_message_over_udp(node, case: Case):
    running, health = node
    quiet = QUIET if case.answer == "none" or case.name == "dblreq" else 0.0
    answers = await threads.deferToThread(udp_answers, Node.sip_port(health, "udp"), fresh(case.data), quiet)
    assert finals(answers) == ([] if case.answer == "none" else [case.answer]), answers


@pytest.mark.parametrize("case", [case for case in CASES if "tcp" in case.transports], ids=lambda case: case.name)
@pytest_twisted.ensureDeferred
async def test_each_torture_message_over_tcp(node, case: Case):
    running, health = node
    quiet = QUIET if case.answer_tcp in ("none", "closed") else 0.0
    answers, closed = await threads.deferToThread(tcp_answers, Node.sip_port(health, "tcp"), fresh(case.data), quiet)
    if case.answer_tcp == "closed":
        assert closed and answers == []
    else:
        assert finals(answers) == ([] if case.answer_tcp == "none" else [case.answer_tcp]), answers
        assert not closed


def register(transport: str, port: int) -> bytes:
    return (f"REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/{transport} 127.0.0.1:{port};branch=z9hG4bKalive{port};"
            f"rport\r\nFrom: <sip:alice@127.0.0.1>;tag=alive\r\nTo: <sip:alice@127.0.0.1>\r\n"
            f"Call-ID: alive{port}\r\nCSeq: 1 REGISTER\r\nMax-Forwards: 70\r\nContact: <sip:alice@127.0.0.1:{port}>\r\n"
            f"Content-Length: 0\r\n\r\n").encode()


def still_serving(node, source: str = "127.0.0.1") -> list[int]:
    """OPTIONS gets 200 and REGISTER its challenge, over UDP and TCP, from `source`."""
    running, health = node
    statuses = []
    for transport in ("udp", "tcp"):
        port = Node.sip_port(health, transport)
        for request in (options(transport.upper(), port), register(transport.upper(), port)):
            if transport == "udp":
                answers = udp_answers(port, fresh(request), 0.0, source)
            else:
                answers = tcp_answers(port, fresh(request), 0.0, source)[0]
            statuses += [status_of(answer) for answer in answers]
    return statuses


@pytest_twisted.ensureDeferred
async def test_the_node_still_serves_after_the_corpus(node):
    running, health = node
    for case in CASES:
        await threads.deferToThread(udp_answers, Node.sip_port(health, "udp"), fresh(case.data), 0.0)
    assert await threads.deferToThread(still_serving, node) == [200, 401, 200, 401]
    assert "Traceback" not in running.output.text


FUZZED_DATAGRAMS = 600
FUZZED_STREAMS = 40


def send_fuzz(udp_port: int, tcp_port: int, seed: int) -> None:
    """Mutated corpus messages as datagrams (answers read and thrown away), and mutated
    streams of several messages over TCP connections that then close at once."""
    seeds = [case.data for case in CASES]
    rng = random.Random(seed)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.bind(("127.0.0.1", 0))
        client.setblocking(False)
        for number in range(FUZZED_DATAGRAMS):
            client.sendto(fresh(mutate(rng, rng.choice(seeds), seeds))[:65507], ("127.0.0.1", udp_port))
            if number % 50 == 0:
                time.sleep(0.05)    # let the node keep up: a full socket buffer only drops
            try:
                while client.recv(65535):
                    pass
            except BlockingIOError:
                pass
    for _ in range(FUZZED_STREAMS):
        stream = b"".join(fresh(mutate(rng, rng.choice(seeds), seeds)) for _ in range(rng.randrange(1, 5)))
        with socket.create_connection(("127.0.0.1", tcp_port), timeout=5) as client:
            try:
                client.sendall(stream)
            except OSError:
                pass    # the node closed a connection whose framing it lost: that is its right


@pytest_twisted.ensureDeferred
async def test_fuzzed_datagrams_and_streams_never_crash_the_node(node):
    running, health = node
    await threads.deferToThread(send_fuzz, Node.sip_port(health, "udp"), Node.sip_port(health, "tcp"), 2026)
    # A phone at another address is served; the fuzzing source may have earned a ban (its
    # mutated credentials count as failed guesses), which is the defence doing its job.
    assert await threads.deferToThread(still_serving, node, "127.0.0.2") == [200, 401, 200, 401]
    assert not running.output.ended.called
    assert "Traceback" not in running.output.text and "Unhandled" not in running.output.text
