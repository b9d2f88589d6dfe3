"""MongoDB command latency, from pymongo's command monitoring.

`CommandMetrics` is a `pymongo.monitoring.CommandListener`: pass it in
`event_listeners` when opening an `AsyncMongoClient`. pymongo calls it with
each command's server round-trip time (`duration_micros`), so nothing is
timed by hand. The command name is a label from a closed set (anything else
is `other`); no command document, filter or reply is ever read, so no
visitor data or credential can reach a label.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Final

from prometheus_client import Histogram
from pymongo import monitoring

#: The commands Tessera (and the driver on its behalf) sends; others count as `other`.
COMMANDS: Final = frozenset(
    {
        "find",
        "getMore",
        "insert",
        "update",
        "delete",
        "findAndModify",
        "aggregate",
        "count",
        "distinct",
        "bulkWrite",
        "killCursors",
        "createIndexes",
        "dropIndexes",
        "listIndexes",
        "listCollections",
        "collMod",
        "create",
        "drop",
        "dropDatabase",
        "ping",
        "hello",
        "endSessions",
        "commitTransaction",
        "abortTransaction",
    }
)

MONGODB_COMMAND_SECONDS = Histogram(
    "tessera_mongodb_command_seconds",
    "MongoDB command round trips as pymongo reports them, by command and outcome (ok, error).",
    ["command", "outcome"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0),
)


def command_label(name: str) -> str:
    """The bounded metric label of a command name."""
    return name if name in COMMANDS else "other"


class CommandMetrics(monitoring.CommandListener):
    """Observes every command's duration into `tessera_mongodb_command_seconds`."""

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        """Nothing to do: the end events carry the duration."""

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        """Record a command that succeeded."""
        MONGODB_COMMAND_SECONDS.labels(command_label(event.command_name), "ok").observe(
            event.duration_micros / 1e6
        )

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        """Record a command that failed (server error or network failure)."""
        MONGODB_COMMAND_SECONDS.labels(command_label(event.command_name), "error").observe(
            event.duration_micros / 1e6
        )


class Liveness(monitoring.CommandListener):
    """When the database last answered a command: slow is not the same as stalled.

    A database that answers slowly still finishes commands (anyone's); a paused
    or wedged one finishes none. `answered` is that moment (`time.monotonic()`),
    0.0 before the first reply.
    """

    def __init__(self) -> None:
        self.answered = 0.0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        """Nothing to do: only replies count."""

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        """A reply: the database is working."""
        self.answered = time.monotonic()

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        """A server error is a reply too; a network failure is not."""
        if not isinstance(event.failure, Mapping) or "code" not in event.failure:
            return
        self.answered = time.monotonic()


def command_listeners(liveness: Liveness | None = None) -> list[monitoring.CommandListener]:
    """The listeners to pass as `event_listeners` to every client the gateway opens."""
    return [CommandMetrics(), *([liveness] if liveness is not None else [])]
