"""Schemathesis hooks for `scripts/fuzz.py`: Tessera's own pass/fail rule.

Schemathesis's `not_a_server_error` treats every GraphQL error as a server
error, but `PAGE_NOT_FOUND` for a random slug is a correct answer. A
response fails here only when it is a 5xx or an error Tessera masked as
internal (an unexpected exception). Each response's status is tallied in
the file `TESSERA_FUZZ_TALLY` names, so the script can report counts.
"""

from __future__ import annotations

import json
import os
from typing import Any

import schemathesis

MASKED = "Internal error: the request could not be completed."


@schemathesis.check
def tessera_no_internal_error(ctx: Any, response: Any, case: Any) -> bool | None:
    """No 5xx and no masked internal error, whatever the query."""
    tally = os.environ.get("TESSERA_FUZZ_TALLY")
    internal = False
    if response.status_code < 500:
        try:
            payload = json.loads(response.content)
        except ValueError:
            payload = None
        errors = payload.get("errors") if isinstance(payload, dict) else None
        internal = any(
            isinstance(error, dict)
            and (
                error.get("message") == MASKED
                or (error.get("extensions") or {}).get("code") == "INTERNAL_SERVER_ERROR"
            )
            for error in errors or ()
        )
    if tally:
        with open(tally, "a", encoding="utf-8") as file:
            file.write(json.dumps({"status": response.status_code, "internal": internal}) + "\n")
    if response.status_code >= 500:
        raise AssertionError(f"{response.status_code} for {case.body!r}")
    if internal:
        raise AssertionError(f"masked internal error for {case.body!r}")
    return None
