"""The content the live tests enter into each CMS, and a tiny PNG to upload.

The site is the adapter contract's (`tests.cms.vendors.SITE`: home with a
hero and a banner, variants for audiences, German title and fields; about;
outdoor), so the contract suite can run against the live servers unchanged.
Schedules are given as instants (Berlin midnight in UTC): both CMSs store
datetimes in UTC.
"""

from __future__ import annotations

import copy
import struct
import zlib
from typing import Any

from tests.cms.vendors import SITE

#: The banner's Black Friday start, 2026-11-27 00:00 in Europe/Berlin, as UTC.
SCHEDULE_START = "2026-11-26T23:00:00.000Z"
SCHEDULE_END = "2026-11-29T23:00:00.000Z"
SECOND_LOCALE = "de-DE"


def site() -> dict[str, dict[str, Any]]:
    """The contract's site with schedules as UTC instants."""
    pages = copy.deepcopy(SITE)
    for page in pages.values():
        for block in page["blocks"]:
            for variant in block["variants"]:
                if "scheduleStart" in variant:
                    variant["scheduleStart"] = SCHEDULE_START
                    variant["scheduleEnd"] = SCHEDULE_END
    return pages


def png(width: int = 4, height: int = 3) -> bytes:
    """A valid RGB PNG of `width` x `height` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x20\x80\x40" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
