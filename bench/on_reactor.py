"""
What the benchmarks that run WeVoIP in their own process share: an embedded PostgreSQL in a
temporary folder, migrated, for the length of a run; a node's caches, kept fresh as on a
node; and running the benchmark on the reactor, with the garbage collector tuned as the
node's entry point tunes it (`wevoip.tap.tune_gc`), printing its figures (or what went
wrong) as JSON.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

from twisted.internet import defer, reactor

from wevoip.billing.decks import DeckIndexes
from wevoip.routing.cache import RoutingCache
from wevoip.store.embedded import EmbeddedPostgres
from wevoip.store.migrate import migrate
from wevoip.store.notify import Notifier
from wevoip.tap import tune_gc


@asynccontextmanager
async def embedded_store(prefix: str) -> AsyncIterator[EmbeddedPostgres]:
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o755)   # the embedded PostgreSQL runs as its own user
    server = EmbeddedPostgres(reactor, folder / "pg")
    try:
        await server.start()
        await migrate(reactor, server.dsn)
        yield server
    finally:
        await server.stop()
        shutil.rmtree(folder, ignore_errors=True)


async def node_caches(dsn: str) -> tuple[Notifier, DeckIndexes, RoutingCache]:
    """A node's notifier with the caches the call path reads attached, as `CallService` has them."""
    notifier = Notifier(reactor, dsn)
    await notifier.start()
    indexes = DeckIndexes()
    await indexes.attach(notifier)
    routes = RoutingCache()
    await routes.attach(notifier)
    return notifier, indexes, routes


def report(run: Callable[[Any], Awaitable[dict]], options: Any) -> None:
    outcome: dict = {}

    def finished(figures):
        outcome.update(figures)
        reactor.stop()

    def failed(failure):
        outcome["error"] = failure.getTraceback()
        reactor.stop()

    reactor.callWhenRunning(tune_gc)      # the garbage collector as the node's entry point sets it
    reactor.callWhenRunning(lambda: defer.Deferred.fromCoroutine(run(options)).addCallbacks(finished, failed))
    reactor.run()
    print(json.dumps(outcome, indent=1))
