"""Run SecantusDB for one parent process, and stop it cleanly once the parent is gone.

    python -m gateway.embedded_child <parent pid> -- <secantus arguments>

`gateway.embedded_mongo` starts the embedded server through this module, in
a session of its own (a Ctrl+C or SIGTERM to the gateway's process group
does not reach it: the gateway stops it last, after flushing). The server
runs in this process, so SIGTERM still stops it cleanly and SIGKILL kills
it; and when the parent exits, however it died, a watch thread sends this
process SIGTERM, so the server closes its storage (releasing WiredTiger's
lock) instead of living on as an orphan.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Sequence

from gateway.lifeline import follow_parent

USAGE = "usage: python -m gateway.embedded_child <parent pid> -- <secantus arguments>"
#: How long the watch waits for SecantusDB's own SIGTERM handler before signalling anyway.
HANDLER_WAIT_SECONDS = 60.0


def _stop_when_handled() -> None:
    """SIGTERM this process once SecantusDB handles SIGTERM itself (a clean stop)."""
    # Before its handler is installed the default action would kill the server mid-start;
    # it is installed right after the storage opens.
    deadline = time.monotonic() + HANDLER_WAIT_SECONDS
    while not callable(signal.getsignal(signal.SIGTERM)) and time.monotonic() < deadline:
        time.sleep(0.05)
    if callable(signal.getsignal(signal.SIGTERM)):
        os.kill(os.getpid(), signal.SIGTERM)
    else:  # a start that never finished: nothing to close cleanly
        os._exit(1)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until SIGTERM, or until the parent process exits."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2 or not args[0].isdigit() or args[1] != "--":
        print(USAGE, file=sys.stderr)
        return 2
    follow_parent(int(args[0]), _stop_when_handled)
    from secantus.cli import main as secantus_main

    return int(secantus_main(args[2:]))


if __name__ == "__main__":
    sys.exit(main())
