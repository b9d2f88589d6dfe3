"""Secrets a single node may generate for itself under its state directory."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path


def state_secret(configured: str, path: Path, setting: str) -> bytes:
    """The configured secret, else one generated once at `path` (owner-only).

    A single-node default only: replicas must share the configured `setting`.
    """
    if configured:
        return configured.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # Created owner-only from the start, and by one process only: O_EXCL makes a
        # concurrent creator (another worker starting) read this secret instead of its own.
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_hex(32))
    # A concurrent creator may not have written it yet (one small write): wait briefly.
    deadline = time.monotonic() + 5.0
    while not (secret := path.read_text(encoding="utf-8").strip()):
        if time.monotonic() > deadline:
            raise ValueError(f"{path} is empty: delete it or set {setting}")
        time.sleep(0.01)
    return secret.encode("utf-8")
