r"""Parse JSON that a client sent: bounded, strict, and with precise errors.

The standard library accepts things that break later, far from the request:
`NaN`, `Infinity` and `1e999999` (a float infinity), lone UTF-16 surrogates
(`"\ud800"` in JSON, which no UTF-8 encoder or BSON will take), bodies in UTF-16,
and nesting deep enough to raise `RecursionError` in whatever walks the value
next. `loads` refuses each of them with a `JSONInputError` that says what and
where, so every entry point can answer 400 instead of 500.
"""

from __future__ import annotations

import json
import re

#: Deep enough for any event, variables object or webhook Tessera reads.
MAX_DEPTH = 64

_SURROGATE = re.compile("[\ud800-\udfff]")


class JSONInputError(ValueError):
    """The input is not JSON Tessera accepts; the message says why."""


def _constant(name: str) -> object:
    raise JSONInputError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise JSONInputError(f"the number {text[:40]} is too large for a double")
    return value


def loads(data: bytes | str, *, max_depth: int = MAX_DEPTH, strict: bool = True) -> object:
    """The JSON value in `data` (UTF-8), or JSONInputError.

    `strict=False` only refuses what breaks parsing itself (not UTF-8, nesting
    deep enough to exhaust the parser): for callers that check each value
    themselves and refuse one item of a batch rather than the whole body.
    """
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONInputError(f"the body is not UTF-8 (byte {exc.start})") from None
    else:
        text = data
    try:
        if not strict:
            return json.loads(text)
        value = json.loads(text, parse_constant=_constant, parse_float=_finite)
    except RecursionError:
        raise JSONInputError("nested too deeply") from None
    except JSONInputError:
        raise
    except ValueError as exc:  # JSONDecodeError, or an integer of more than 4300 digits
        if "integer string conversion" in str(exc):
            # Python's own message tells the reader to change an interpreter setting.
            raise JSONInputError("a number has more than 4300 digits") from None
        raise JSONInputError(str(exc)) from None
    check(value, max_depth=max_depth)
    return value


def check(value: object, *, max_depth: int = MAX_DEPTH) -> None:
    """Refuse nesting deeper than `max_depth` and strings with lone surrogates."""
    # Iterative: the value may be deep, and this must not recurse itself.
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if not item.isascii() and _SURROGATE.search(item):
                raise JSONInputError("a string holds a lone UTF-16 surrogate (not Unicode text)")
        elif isinstance(item, (dict, list)):
            if depth > max_depth:
                raise JSONInputError(f"nested too deeply (at most {max_depth} levels)")
            if isinstance(item, dict):
                stack.extend((key, depth) for key in item)
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)
