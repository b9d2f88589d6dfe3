"""Decision metrics: how many block decisions were made, by reason.

The label is the decision's reason from a closed set, so a label can never
carry editor- or client-chosen text: `audience:<names>` (the audience names
are editors' data, unbounded) is counted as `audience`, and a reason this
module does not know yet as `other` (a test keeps the set in step with
`blocks.selection`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from prometheus_client import Counter

from blocks.selection import Decision

#: Every reason `blocks` gives a decision, except `audience:<names>`.
REASONS: Final = frozenset(
    {
        "default",
        "condition",
        "priority",
        "score",
        "explore",
        "experiment",
        "experiment:winner",
        "preview:forced",
        "fallback:profile-unavailable",
        "fallback:no-consent",
        "fallback:score-timeout",
        "fallback:score-error",
    }
)

DECISIONS = Counter(
    "tessera_decisions",
    "Block decisions served, by reason (audience:<name> counted as audience).",
    ["reason"],
)


def reason_label(reason: str) -> str:
    """The bounded metric label of a decision reason."""
    if reason in REASONS:
        return reason
    if reason.startswith("audience:"):
        return "audience"
    return "other"


#: The counter of each label: `labels()` hashes and locks on every call, 8 times a page.
_CHILDREN: Final = {label: DECISIONS.labels(label) for label in (*REASONS, "audience", "other")}


def count_decisions(decisions: Iterable[Decision]) -> None:
    """Count each block decision of a page under its reason."""
    for decision in decisions:
        _CHILDREN[reason_label(decision.reason)].inc()
