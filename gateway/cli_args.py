"""Argument types shared by the command-line tools."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime


def iso_instant(text: str) -> datetime:
    """An ISO 8601 date-time argument, in UTC when it names no offset."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date-time: {text!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
