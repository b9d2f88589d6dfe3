"""Edge keys: the signed visitor facts an edge cache keys `audience` pages on.

A page whose decisions read only audience memberships, device, country,
whether the visitor has product history, and consent is the same for every
visitor with the same values of those facts, so an edge cache may share it
among them. The browser carries the visitor's
key in the `tsr_ek` cookie: an opaque HMAC of *all* their edge facts (the
edge cannot know which facts a page reads before it has the page), and the
edge varies its cache on it. Each response also names the key of exactly the
facts its page read (`X-Tessera-Edge-Key`), for edges that key per page.

The key reveals nothing (not even which audiences exist) and cannot be
forged without `EDGE_KEY_SECRET`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable
from pathlib import Path

from blocks.context import TargetingContext
from blocks.recommendations import HISTORY_FACT, has_history
from blocks.selection import CONSENT_FACT, EXPERIMENT_FACT
from common.state_secret import state_secret

#: Bumped when the facts or their encoding change, so old cookies never match.
VERSION = "ek1"
#: The visitor's variation in each experiment (None: not enrolled), by experiment key.
Arms = tuple[tuple[str, int | None], ...]


class EdgeKeys:
    """Compute edge keys under one secret (every replica must share it)."""

    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise ValueError("EDGE_KEY_SECRET: must not be empty")
        self._secret = secret

    def _sign(self, facts: dict[str, object]) -> str:
        canonical = json.dumps(facts, sort_keys=True, separators=(",", ":"))
        digest = hmac.new(self._secret, canonical.encode(), hashlib.sha256).digest()
        return f"{VERSION}.{base64.urlsafe_b64encode(digest[:18]).decode()}"

    def visitor_key(self, context: TargetingContext, arms: Arms = ()) -> str:
        """The key of every edge fact of this visitor (what `tsr_ek` holds)."""
        return self._sign(
            {
                "audiences": sorted(context.audiences),
                "device": context.attributes.get("device"),
                "country": context.attributes.get("country"),
                HISTORY_FACT: has_history(context.attributes),
                CONSENT_FACT: context.personalization_consent,
                EXPERIMENT_FACT: [list(arm) for arm in arms],
            }
        )

    def page_key(self, context: TargetingContext, facts: Iterable[str], arms: Arms = ()) -> str:
        """The key of exactly `facts` (as `Decision.facts` names them) for this visitor."""
        values: dict[str, object] = {}
        for fact in sorted(set(facts)):
            if fact.startswith("audience:"):
                values[fact] = fact.removeprefix("audience:") in context.audiences
            elif fact == "audiences":
                values[fact] = sorted(context.audiences)
            elif fact == CONSENT_FACT:
                values[fact] = context.personalization_consent
            elif fact == EXPERIMENT_FACT:
                values[fact] = [list(arm) for arm in arms]
            elif fact == HISTORY_FACT:
                values[fact] = has_history(context.attributes)
            else:
                values[fact] = context.attributes.get(fact)
        return self._sign(values)


def edge_secret_from(configured: str, state_dir: Path) -> bytes:
    """The configured secret, else one generated once under `state_dir` (single node)."""
    return state_secret(configured, state_dir / "edge-key.secret", "EDGE_KEY_SECRET")
