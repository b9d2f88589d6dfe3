"""Follow the parent process and act once it is gone, however it died (SIGKILL included).

Linux's `PR_SET_PDEATHSIG` fires when the *thread* that forked the child
exits, not the process, and it cannot run a clean shutdown. A child that
must not outlive its parent (the embedded database, a `serve --workers`
worker) watches its parent instead: its own parent pid changes when the
parent exits (the child is re-parented), and a pidfd on the parent becomes
readable at that moment. The parent's pid is passed down rather than read
at start-up: a child that starts after its parent died would otherwise
take its new parent (init) for the one to follow.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
from collections.abc import Callable

#: How often the parent pid is checked (a pidfd wakes the watch at once anyway).
POLL_SECONDS = 0.5


def wait_for_parent(parent: int, *, poll: float = POLL_SECONDS) -> None:
    """Return once process `parent`, this process's parent, has exited (at once if it has)."""
    pidfd: int | None = None
    with contextlib.suppress(AttributeError, OSError):
        pidfd = os.pidfd_open(parent)
    try:
        # Re-parented: the parent has exited (a recycled pid cannot fool this check).
        while os.getppid() == parent:
            if pidfd is None:
                select.select([], [], [], poll)
            elif select.select([pidfd], [], [], poll)[0]:
                return
    finally:
        if pidfd is not None:
            os.close(pidfd)


def follow_parent(parent: int, on_gone: Callable[[], None]) -> threading.Thread:
    """Call `on_gone` (in a daemon thread) once process `parent`, our parent, has exited."""

    def watch() -> None:
        wait_for_parent(parent)
        on_gone()

    thread = threading.Thread(target=watch, name="tessera-lifeline", daemon=True)
    thread.start()
    return thread
