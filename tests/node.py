"""
A real WeVoIP node for end-to-end tests: `python -m twisted wevoip` in a child process,
with its own data directory, configuration and free loopback ports.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sys
from pathlib import Path

import pytest_twisted
import treq
from twisted.internet import defer, protocol, reactor
from twisted.internet.error import ProcessDone
from twisted.internet.task import deferLater

ROOT = Path(__file__).resolve().parent.parent


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _Output(protocol.ProcessProtocol):
    def __init__(self):
        self.text = ""
        self.ended: defer.Deferred[int] = defer.Deferred()

    def outReceived(self, data):  # noqa: N802
        self.text += data.decode("utf-8", "replace")

    errReceived = outReceived

    def processEnded(self, reason):  # noqa: N802
        """The exit status, or minus the signal that ended the process, as a shell shows it."""
        if reason.check(ProcessDone):
            self.ended.callback(0)
        elif reason.value.exitCode is not None:
            self.ended.callback(reason.value.exitCode)
        else:
            self.ended.callback(-reason.value.signal)


def node_for_module(start):
    """The body of a module-scoped fixture around `start()`, a coroutine that starts a node and
    returns an object with `node`, `database` (connected to it) and `folder`: all go at the end."""
    running = pytest_twisted.blockon(defer.ensureDeferred(start()))
    yield running
    pytest_twisted.blockon(defer.ensureDeferred(running.database.close()))
    pytest_twisted.blockon(defer.ensureDeferred(running.node.stop()))
    shutil.rmtree(running.folder, ignore_errors=True)


class Node:
    def __init__(self, folder: Path, *, config: str | None = None, env: dict | None = None,
                 args: tuple[str, ...] = (), sip: bool = False, name: str = "test-node",
                 nofile: int | None = None):
        """`nofile`: an RLIMIT_NOFILE (soft and hard) for the node's process, as a tight
        system would give it."""
        self.folder = folder
        self.nofile = nofile
        self.name = name
        self.web_port = free_port()
        self.manhole_port = free_port()
        self.config_path = folder / "wevoip.toml"
        if config is None:
            config = self.default_config(sip)
        self.config_path.write_text(config)
        self.env = env or {}
        self.args = args
        self.output: _Output | None = None
        self.transport = None

    def default_config(self, sip: bool = False) -> str:
        """SIP is off unless asked for; then every transport listens on loopback at a port the
        OS picks (read them from `sip_port` once the node is ready)."""
        listen = '["127.0.0.1:0"]' if sip else "[]"
        return (f'[node]\nname = "{self.name}"\ndata_dir = "data"\n'
                f'[web]\nhttp = ["127.0.0.1:{self.web_port}"]\n'
                f'[manhole]\nlisten = "127.0.0.1:{self.manhole_port}"\nauthorized_keys = "authorized_keys"\n'
                f'[sip]\n' + "".join(f"{name} = {listen}\n" for name in ("udp", "tcp", "tls", "ws", "wss")))

    @property
    def dsn(self) -> str:
        return f"host={self.folder / 'data' / 'postgres'} dbname=postgres user=postgres"

    def start(self) -> None:
        self.output = _Output()
        env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"),
               "PYTHONUNBUFFERED": "1", **self.env}
        code = "from twisted.scripts.twistd import run; run()"
        if self.nofile is not None:
            code = f"import resource; resource.setrlimit(resource.RLIMIT_NOFILE, ({self.nofile}, {self.nofile})); {code}"
        argv = [sys.executable, "-c", code,
                "--nodaemon", "--pidfile=", "wevoip",
                "--config", str(self.config_path), *self.args]
        self.transport = reactor.spawnProcess(self.output, sys.executable, argv, env=env,
                                              path=str(self.folder))

    async def health(self) -> tuple[int, dict]:
        response = await treq.get(f"http://127.0.0.1:{self.web_port}/healthz", timeout=5)
        return response.code, json.loads(await response.content())

    @staticmethod
    def sip_port(health: dict, transport: str) -> int:
        return next(entry["port"] for entry in health["listeners"]
                    if (entry["service"], entry["transport"]) == ("sip", transport))

    async def start_ready(self) -> dict:
        """Start and wait until ready (the health answer); a node that never gets there is stopped."""
        self.start()
        try:
            return await self.wait_ready()
        except AssertionError:
            await self.stop()
            raise

    async def wait_ready(self, timeout: float = 60.0) -> dict:
        for _ in range(int(timeout * 5)):
            if self.output.ended.called:
                raise AssertionError(f"the node exited while starting:\n{self.output.text}")
            try:
                code, body = await self.health()
            except Exception:
                code, body = None, None
            if code == 200 and f"WeVoIP node {self.name} is ready" in self.output.text:
                return body
            await deferLater(reactor, 0.2, lambda: None)
        raise AssertionError(f"the node did not become ready:\n{self.output.text}")

    async def exit_code(self, timeout: float = 60.0) -> int:
        return await self.output.ended.addTimeout(timeout, reactor)

    async def kill(self) -> int:
        """SIGKILL, as a crash: the node leaves its calls and its PostgreSQL server behind."""
        self.transport.signalProcess(signal.SIGKILL)
        return await self.exit_code()

    async def stop(self) -> int:
        """SIGTERM; after a clean shutdown twistd ends itself with that signal, as it should."""
        if not self.output.ended.called:
            self.transport.signalProcess(signal.SIGTERM)
        return await self.exit_code()


STOPPED_CLEANLY = -signal.SIGTERM


class _SSHSession(protocol.ProcessProtocol):
    """Types one line into the manhole once its prompt shows, then Ctrl-D to leave."""

    def __init__(self, line: str):
        self.line = line
        self.text = ""
        self.typed = False
        self.ended: defer.Deferred[int] = defer.Deferred()

    def outReceived(self, data):  # noqa: N802
        self.text += data.decode("utf-8", "replace")
        if not self.typed and ">>> " in self.text:
            self.typed = True
            self.transport.write(self.line.encode() + b"\r")
            reactor.callLater(1.0, self.transport.write, b"\x04")

    errReceived = outReceived

    def processEnded(self, reason):  # noqa: N802
        self.ended.callback(0 if reason.check(ProcessDone) else reason.value.exitCode)


async def ssh_eval(port: int, key: Path, line: str, timeout: float = 20.0) -> tuple[int, str]:
    """Log in with OpenSSH's own client, as an admin would."""
    session = _SSHSession(line)
    argv = ["ssh", "-tt", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR",
            "-i", str(key), "-p", str(port), "admin@127.0.0.1"]
    transport = reactor.spawnProcess(session, "/usr/bin/ssh", argv, env={"PATH": os.environ["PATH"]})
    killer = reactor.callLater(timeout, transport.signalProcess, "KILL")
    code = await session.ended
    if killer.active():
        killer.cancel()
    return code, session.text
