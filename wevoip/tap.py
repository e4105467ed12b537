"""
`twistd wevoip`: the command-line options and the one place that takes the global reactor.
"""

from __future__ import annotations

import gc
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


# See tune_gc.
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """A busy SIP node keeps about a million container objects alive (every finished
    transaction waits out timer J for 32 s, every binding stays), and with CPython's
    default thresholds each full collection walks all of them: measured, about a fifth of
    the REGISTER path's CPU. Freezing what exists once the node is built (modules, config,
    the service tree) takes it out of every collection for good, and larger thresholds
    let the short-lived objects of a request die by reference count before a collection
    ever walks them. Cyclic garbage is still collected, just in larger, rarer batches."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def makeService(options: Options) -> WeVoIPService:  # noqa: N802 (Twisted's name)
    from twisted.internet import reactor

    try:
        service = WeVoIPService(reactor, options["wevoip_config"], on_fatal=_exit_failed(reactor))
    except PluginError as error:
        raise SystemExit(f"plugin error: {error}") from None
    reactor.callWhenRunning(tune_gc)
    return service
