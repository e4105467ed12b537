"""
`twistd wevoip`: the command-line options and the one place that takes the global reactor.
"""

from __future__ import annotations

import os
import sys

from twisted.python import usage

from wevoip.config import ConfigError, load_config
from wevoip.plugins import PluginError
from wevoip.service import WeVoIPService


class Options(usage.Options):
    optParameters = [
        ["config", "c", "etc/wevoip.toml", "The configuration file."],
        ["dsn", None, None, "A PostgreSQL connection string; overrides store.dsn."],
        ["data-dir", None, None, "Where the node keeps its state; overrides node.data_dir."],
    ]

    def postOptions(self) -> None:  # noqa: N802 (Twisted's name)
        try:
            self["wevoip_config"] = load_config(self["config"]).with_overrides(
                dsn=self["dsn"], data_dir=self["data-dir"])
        except ConfigError as error:
            raise usage.UsageError(f"configuration error: {error}") from None


def _exit_failed(reactor):
    """twistd has no exit status of its own: after a fatal start, stop and exit 1."""
    def on_fatal(failure) -> None:
        def leave() -> None:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(1)
        reactor.addSystemEventTrigger("after", "shutdown", leave)
        # The failure may come while the reactor is still starting up, when a stop would
        # be lost; from the main loop it always takes.
        reactor.callLater(0, reactor.stop)
    return on_fatal


def makeService(options: Options) -> WeVoIPService:  # noqa: N802 (Twisted's name)
    from twisted.internet import reactor

    try:
        return WeVoIPService(reactor, options["wevoip_config"], on_fatal=_exit_failed(reactor))
    except PluginError as error:
        raise SystemExit(f"plugin error: {error}") from None
