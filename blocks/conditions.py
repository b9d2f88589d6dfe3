"""Targeting conditions: MongoDB-style documents with GrowthBook's SDK semantics.

A condition is a JSON object whose entries must all hold. A plain key is a dot
path into the attributes (``"user.address.country"``; numeric segments index
arrays) and its value is either a literal or an operator object. As in
GrowthBook, a key is an attribute path even when it starts with ``$``
(``"$groups"``), unless it is an operator or a near miss of ``$and $or $nor
$not`` (then it is reported as a typo). A literal is
compared by strict equality: types must agree (``true`` never equals ``1``),
arrays element by element in order, objects key by key in the same order.
An operator object (every key starts with ``$``) holds operators that must all
pass: ``$eq $ne $gt $gte $lt $lte $in $nin $all $elemMatch $size $exists
$type $regex $not``, their case-insensitive forms ``$ini $nini $alli $regexi
$notRegex $notRegexi``, the version operators ``$veq $vne $vgt $vgte $vlt
$vlte`` (``v`` prefix and build metadata ignored, pre-releases sort first) and
``$inGroup $notInGroup`` (membership in a named list of values). ``$and``,
``$or`` and ``$nor`` combine lists of conditions (an empty ``$and``/``$or``
passes) and ``$not`` negates one.

The evaluation is GrowthBook's own, :func:`growthbook.core.evalCondition`; the
Python SDK's rules apply, notably: a missing attribute reads as null (so
``$exists: false``, ``null``, ``$ne``, ``$nin`` and ``$notRegex`` match it, and
``$type`` calls it ``"null"``, never ``"undefined"``); only two numbers or two
strings are ordered (strings by code unit, so ``"10" < "9"``; a number never
compares with a string); ``$in``/``$nin`` on an array attribute test the
intersection; ``$eq`` with an array or object never matches (use a literal).

This module adds what GrowthBook leaves to its callers:

* validation (:func:`validate`): unknown operators, wrong argument types,
  excessive nesting and regexes that are invalid, too long or prone to
  catastrophic backtracking are reported with a path such as
  ``$and[1].country.$inn``;
* compilation (:func:`compile_condition`): a condition is checked once at load
  time and evaluated per request without re-validation;
* failure containment: a malformed condition never matches and never raises;
  it is logged once per distinct condition and counted in :data:`STATS`;
* a regex run-time bound: a pattern only ever runs against strings of up to
  :data:`MAX_REGEX_SUBJECT` characters; a longer value does not match it (so
  ``$regex`` fails and ``$notRegex`` passes).
"""

from __future__ import annotations

import difflib
import itertools
import logging
import math
import re
import threading
import warnings
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from growthbook.core import evalCondition

__all__ = [
    "MAX_DEPTH",
    "MAX_NODES",
    "MAX_PATTERN_LENGTH",
    "MAX_REGEX_SUBJECT",
    "OPERATORS",
    "ROOT",
    "STATS",
    "TYPE_NAMES",
    "CompiledCondition",
    "ConditionProblem",
    "ConditionStats",
    "compile_condition",
    "evaluate",
    "validate",
]

logger = logging.getLogger(__name__)

MAX_DEPTH: Final = 32
"""Deepest allowed nesting of objects and arrays in a condition."""
MAX_NODES: Final = 50_000
"""Most values (containers and scalars) a condition may hold."""
MAX_PATTERN_LENGTH: Final = 256
"""Longest allowed regex pattern."""
MAX_REGEX_SUBJECT: Final = 4096
"""Longest string a regex is run against; longer values never match."""
REGEX_CHOICES: Final = 2 * (MAX_REGEX_SUBJECT + 1)
"""Most choices a pattern may leave the matcher: one unbounded repetition, doubled."""
CACHE_SIZE: Final = 1024
"""Distinct conditions remembered by :func:`evaluate` and by the warn-once log."""

ROOT: Final = "(root)"

_COMBINATORS: Final = frozenset({"$and", "$or", "$nor"})
_COMPARISONS: Final = frozenset({"$gt", "$gte", "$lt", "$lte"})
_IN_OPERATORS: Final = frozenset({"$in", "$nin", "$ini", "$nini"})
_ALL_OPERATORS: Final = frozenset({"$all", "$alli"})
_REGEX_OPERATORS: Final = frozenset({"$regex", "$regexi", "$notRegex", "$notRegexi"})
_VERSION_OPERATORS: Final = frozenset({"$veq", "$vne", "$vgt", "$vgte", "$vlt", "$vlte"})
_GROUP_OPERATORS: Final = frozenset({"$inGroup", "$notInGroup"})
_UNSUPPORTED: Final = frozenset({"$savedGroup", "$savedGroups"})
_VALUE_OPERATORS: Final = (
    frozenset({"$eq", "$ne", "$not", "$elemMatch", "$size", "$exists", "$type"})
    | _COMPARISONS
    | _IN_OPERATORS
    | _ALL_OPERATORS
    | _REGEX_OPERATORS
    | _VERSION_OPERATORS
    | _GROUP_OPERATORS
)
OPERATORS: Final = _VALUE_OPERATORS | _COMBINATORS
"""Every supported operator."""
_SORTED_OPERATORS: Final = sorted(OPERATORS)

TYPE_NAMES: Final = ("string", "number", "boolean", "array", "object", "null", "undefined")
"""The names `$type` accepts."""


@dataclass(frozen=True, slots=True)
class ConditionProblem:
    """One reason a condition is malformed, located by a JSON-path-like `path`."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class ConditionStats:
    """Process-wide counters, for a metrics endpoint to export."""

    __slots__ = ("_lock", "errors", "malformed")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Evaluations of a malformed condition (each returned False)
        self.malformed = 0
        # Evaluations of a valid condition that raised unexpectedly (each returned False)
        self.errors = 0

    def count_malformed(self) -> None:
        """Count one evaluation of a malformed condition."""
        with self._lock:
            self.malformed += 1

    def count_error(self) -> None:
        """Count one evaluation that failed unexpectedly."""
        with self._lock:
            self.errors += 1

    def reset(self) -> None:
        """Set every counter back to zero."""
        with self._lock:
            self.malformed = 0
            self.errors = 0


STATS: Final = ConditionStats()


class _LRU:
    """A small thread-safe least-recently-used map."""

    __slots__ = ("_data", "_lock", "_size")

    def __init__(self, size: int) -> None:
        self._data: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._size = size

    def get(self, key: str) -> Any:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def add(self, key: str, value: Any) -> bool:
        """Store `value`; False if `key` was already present (which is then refreshed)."""
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return False
            self._data[key] = value
            if len(self._data) > self._size:
                self._data.popitem(last=False)
            return True

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


_compiled_cache = _LRU(CACHE_SIZE)
_warned = _LRU(CACHE_SIZE)


def _clear_caches() -> None:
    """Forget cached compilations and which conditions were already logged (for tests)."""
    _compiled_cache.clear()
    _warned.clear()


# -- validation --------------------------------------------------------------


class _TooLarge(Exception):
    pass


def json_kind(value: Any) -> str:
    """The JSON type name of a value (`null`, `boolean`, `number`, ...) for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_operator_object(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and bool(value)
        and all(isinstance(key, str) and key.startswith("$") for key in value)
    )


def _suggest(word: str, choices: Sequence[str]) -> str:
    lowered = word.lower()
    for choice in choices:
        if choice.lower() == lowered:
            return f" (did you mean '{choice}'?)"
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


_CONDITION_LEVEL: Final = sorted(_COMBINATORS | {"$not"})


def _operator_like(key: str) -> bool:
    """Whether a `$` key where a condition is expected is an operator (or a typo of one).

    GrowthBook reads any other key as an attribute path, so an attribute
    literally named `$groups` can be tested; `$andd` or `$OR` are still
    reported as typos, and value operators such as `$in` as misplaced.
    """
    if key in OPERATORS or key in _UNSUPPORTED:
        return True
    lowered = key.lower()
    if any(lowered == op.lower() for op in _SORTED_OPERATORS):
        return True
    return bool(difflib.get_close_matches(key, _CONDITION_LEVEL, n=1, cutoff=0.6))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class _Walker:
    """Validates a condition and builds the independent copy that is evaluated."""

    def __init__(self) -> None:
        self.problems: list[ConditionProblem] = []
        self.groups: set[str] = set()
        self.runtime: Any = None
        self._nodes = 0

    def add(self, path: str, message: str) -> None:
        self.problems.append(ConditionProblem(path or ROOT, message))

    def _visit(self, value: Any, path: str, depth: int) -> bool:
        """Count a value; False (with a problem) if it is a container nested too deep."""
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise _TooLarge
        if depth > MAX_DEPTH and isinstance(value, dict | list):
            self.add(path, f"nested deeper than {MAX_DEPTH} levels")
            return False
        return True

    def _key_ok(self, key: Any, path: str) -> bool:
        if isinstance(key, str):
            return True
        self.add(path, f"object keys must be strings, got {json_kind(key)} {key!r}")
        return False

    def condition(self, node: Any, path: str, depth: int) -> Any:
        if not isinstance(node, dict):
            if path:
                self.add(path, f"expected a condition object, got {json_kind(node)}")
            else:
                self.add(path, f"condition must be an object, got {json_kind(node)}")
            return node
        if not self._visit(node, path, depth):
            return node
        out: dict[str, Any] = {}
        for key, value in node.items():
            if not self._key_ok(key, path):
                continue
            here = _join(path, key)
            if key in _COMBINATORS:
                if not isinstance(value, list):
                    self.add(here, f"'{key}' expects a list of conditions, got {json_kind(value)}")
                elif self._visit(value, here, depth + 1):
                    out[key] = [
                        self.condition(item, f"{here}[{index}]", depth + 2)
                        for index, item in enumerate(value)
                    ]
            elif key == "$not":
                if isinstance(value, dict):
                    out[key] = self.condition(value, here, depth + 1)
                else:
                    self.add(here, f"'$not' expects a condition object, got {json_kind(value)}")
            elif key.startswith("$") and _operator_like(key):
                self._misplaced(key, here, attribute_level=False)
            else:
                # An attribute path, even one that starts with `$` (GrowthBook: `$groups`).
                out[key] = self.value(value, here, depth + 1)
        return out

    def _misplaced(self, key: str, path: str, *, attribute_level: bool) -> None:
        if key in _UNSUPPORTED:
            self.add(path, f"unsupported operator '{key}' (use '$inGroup' on an attribute)")
        elif key in _COMBINATORS and attribute_level:
            self.add(
                path, f"'{key}' combines conditions and cannot be applied to an attribute value"
            )
        elif key in _VALUE_OPERATORS and not attribute_level:
            self.add(path, f"operator '{key}' must be applied to an attribute")
        else:
            self.add(path, f"unknown operator '{key}'{_suggest(key, _SORTED_OPERATORS)}")

    def value(self, node: Any, path: str, depth: int) -> Any:
        """A condition value: an operator object, or a literal compared for equality."""
        if _is_operator_object(node):
            return self.operators(node, path, depth)
        if isinstance(node, dict) and not node:
            self._visit(node, path, depth)
            self.add(
                path,
                "an empty object matches anything in the Python SDK but only {} in the "
                'JavaScript SDK; use an operator such as {"$exists": true}',
            )
            return node
        return self.literal(node, path, depth)

    def operators(self, node: dict[str, Any], path: str, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if not self._visit(node, path, depth):
            return out
        for op, argument in node.items():
            out[op] = self.operator(op, argument, f"{path}.{op}", depth + 1)
        return out

    def operator(self, op: str, arg: Any, path: str, depth: int) -> Any:
        if op in ("$eq", "$ne"):
            return self.literal(arg, path, depth)
        if op in _COMPARISONS:
            if not (_is_number(arg) or isinstance(arg, str)):
                self._visit(arg, path, depth)
                self.add(path, f"'{op}' expects a number or a string, got {json_kind(arg)}")
                return arg
            return self.literal(arg, path, depth)
        if op in _IN_OPERATORS:
            if not isinstance(arg, list):
                self._visit(arg, path, depth)
                self.add(path, f"'{op}' expects a list, got {json_kind(arg)}")
                return arg
            return self.literal(arg, path, depth)
        if op in _ALL_OPERATORS:
            if not isinstance(arg, list):
                self._visit(arg, path, depth)
                self.add(path, f"'{op}' expects a list, got {json_kind(arg)}")
                return arg
            if not self._visit(arg, path, depth):
                return arg
            return [self.value(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(arg)]
        if op == "$size":
            if _is_operator_object(arg):
                return self.operators(arg, path, depth)
            if not _is_number(arg):
                self._visit(arg, path, depth)
                self.add(
                    path,
                    f"'$size' expects a number or an operator object such as "
                    f'{{"$gt": 2}}, got {json_kind(arg)}',
                )
                return arg
            return self.literal(arg, path, depth)
        if op == "$exists":
            self._visit(arg, path, depth)
            if not isinstance(arg, bool):
                self.add(path, f"'$exists' expects true or false, got {json_kind(arg)}")
            return arg
        if op == "$type":
            self._visit(arg, path, depth)
            if arg not in TYPE_NAMES or not isinstance(arg, str):
                hint = _suggest(arg, TYPE_NAMES) if isinstance(arg, str) else ""
                shown = repr(arg) if isinstance(arg, str) else json_kind(arg)
                self.add(path, f"'$type' expects one of {', '.join(TYPE_NAMES)}; got {shown}{hint}")
            return arg
        if op == "$elemMatch":
            if not isinstance(arg, dict):
                self._visit(arg, path, depth)
                self.add(path, f"'$elemMatch' expects an object, got {json_kind(arg)}")
                return arg
            # Like GrowthBook: operators test each element itself, anything else
            # (including $and/$or/$nor) is a condition on each element's fields.
            if _is_operator_object(arg) and not any(k in _COMBINATORS for k in arg):
                return self.operators(arg, path, depth)
            if not arg:
                self._visit(arg, path, depth)
                return {}
            return self.condition(arg, path, depth)
        if op in _REGEX_OPERATORS:
            self._visit(arg, path, depth)
            return self.regex(op, arg, path)
        if op in _VERSION_OPERATORS:
            if not (_is_number(arg) or isinstance(arg, str)):
                self._visit(arg, path, depth)
                self.add(path, f"'{op}' expects a version string or number, got {json_kind(arg)}")
                return arg
            return self.literal(arg, path, depth)
        if op in _GROUP_OPERATORS:
            self._visit(arg, path, depth)
            if isinstance(arg, str):
                self.groups.add(arg)
            else:
                self.add(path, f"'{op}' expects a group name string, got {json_kind(arg)}")
            return arg
        if op == "$not":
            return self.value(arg, path, depth)
        self._misplaced(op, path, attribute_level=True)
        return arg

    def regex(self, op: str, pattern: Any, path: str) -> Any:
        if not isinstance(pattern, str):
            self.add(path, f"'{op}' expects a pattern string, got {json_kind(pattern)}")
            return pattern
        if len(pattern) > MAX_PATTERN_LENGTH:
            self.add(path, f"pattern is longer than {MAX_PATTERN_LENGTH} characters")
            return pattern
        error = _compile_error(pattern)
        if error is not None:
            self.add(path, error)
            return pattern
        risk = _backtracking_risk(pattern)
        if risk is not None:
            self.add(path, f"pattern may backtrack catastrophically: {risk}")
            return pattern
        guarded = _guard_pattern(pattern)
        if _compile_error(guarded, check_warnings=False) is not None:
            self.add(path, "pattern cannot be bounded; move inline flags to its start")
            return pattern
        return guarded

    def literal(self, node: Any, path: str, depth: int) -> Any:
        """Check a literal is JSON; return an independent copy."""
        if not self._visit(node, path, depth):
            return node
        if node is None or isinstance(node, bool | str):
            return node
        if isinstance(node, int | float):
            if isinstance(node, float) and not math.isfinite(node):
                self.add(path, "NaN and infinite numbers are not JSON values")
            elif isinstance(node, int) and not -(2**63) <= node < 2**63:
                # MongoDB stores 8-byte integers: a larger one fails the save, not here.
                self.add(path, "integers must fit in 64 bits (use a float)")
            return node
        if isinstance(node, list):
            return [self.literal(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(node)]
        if isinstance(node, dict):
            out: dict[str, Any] = {}
            for key, value in node.items():
                if not self._key_ok(key, path):
                    continue
                here = _join(path, key)
                if key.startswith("$"):
                    self.add(
                        here,
                        f"'{key}' inside a literal object is compared literally, "
                        "not applied as an operator",
                    )
                out[key] = self.literal(value, here, depth + 1)
            return out
        self.add(path, f"{type(node).__name__} is not a JSON value")
        return node


def _walk(condition: Any) -> _Walker:
    walker = _Walker()
    try:
        walker.runtime = walker.condition(condition, "", 1)
    except _TooLarge:
        walker.add("", f"condition is too large (more than {MAX_NODES} values)")
    except Exception as exc:  # a bug here must not break a page either
        walker.add("", f"condition could not be checked ({type(exc).__name__})")
    return walker


def validate(condition: Any) -> list[ConditionProblem]:
    """Every problem that makes `condition` malformed; empty if it is valid."""
    return list(_walk(condition).problems)


# -- regular expressions -----------------------------------------------------


_fresh = itertools.count()


def _compile_error(pattern: str, *, check_warnings: bool = True) -> str | None:
    """Why `pattern` does not compile cleanly, or None."""
    try:
        # Only runs when content is loaded; catch_warnings is process-wide.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            re.compile(pattern)
            if check_warnings:
                # re caches compiled patterns and only warns on the first compile,
                # so compile a unique variant (a trailing comment) to see warnings.
                re.compile(f"{pattern}(?#{next(_fresh)})")
    except re.error as exc:
        return f"invalid pattern: {exc}"
    except Exception as exc:  # e.g. OverflowError, RecursionError
        return f"invalid pattern: {type(exc).__name__}"
    if caught:
        return f"ambiguous pattern: {caught[0].message}"
    return None


_FLAG_GROUP = re.compile(r"\(\?([aiLmsux]*)(?:-([imsx]+))?([:)])")
_GROUP_NAME = re.compile(r"\(\?P<\w+>")
_BRACES = re.compile(r"\{(\d*)(,?)(\d*)\}")
_LEADING_FLAGS = re.compile(r"(?:\(\?[aiLmsux]+\)|\(\?#[^)]*\))+")


def _quantifier(pattern: str, i: int) -> tuple[float | None, int, float]:
    """A quantifier at `i`: its maximum repetition (None if none), end, and choices.

    The choices are how many repetition counts it lets the matcher try.
    """
    if i >= len(pattern):
        return None, i, 1
    char = pattern[i]
    most: float
    least = 0
    if char in "*+":
        most, end, least = math.inf, i + 1, (1 if char == "+" else 0)
    elif char == "?":
        most, end = 1, i + 1
    elif char == "{":
        match = _BRACES.match(pattern, i)
        if match is None or (not match.group(1) and not match.group(2)):
            return None, i, 1  # a literal brace, like Python's parser
        low, comma, high = match.groups()
        least = int(low) if low else 0
        most = (int(high) if high else math.inf) if comma else least
        end = match.end()
    else:
        return None, i, 1
    if end < len(pattern) and pattern[end] in "?+":  # lazy or possessive
        end += 1
    # A subject is at most MAX_REGEX_SUBJECT characters: no more counts than that.
    choices = max(1, min(most, MAX_REGEX_SUBJECT) - min(least, MAX_REGEX_SUBJECT) + 1)
    return most, end, choices


def _skip_class(pattern: str, i: int) -> int:
    """The index just past the character class opening at `i`."""
    j = i + 1
    if j < len(pattern) and pattern[j] == "^":
        j += 1
    if j < len(pattern) and pattern[j] == "]":
        j += 1
    while j < len(pattern):
        if pattern[j] == "\\":
            j += 2
        elif pattern[j] == "]":
            return j + 1
        else:
            j += 1
    return j


def _backtracking_risk(pattern: str) -> str | None:
    r"""Why a compiled pattern may backtrack catastrophically, or None.

    Conservative: any group repeated more than once whose body holds a
    quantifier or an alternation is flagged (`(a+)+`, `(\w+\s?)*`, `(a|ab)*`),
    and so are backreferences and verbose mode, which this scanner cannot read.

    Then polynomial backtracking: `a*a*b` (two unbounded repetitions of what
    the same characters match) takes time of the subject's length squared per
    search start, cubed with the search itself (14 s on 4,096 letters), and
    alternatives and optional parts multiply too (`a?a?a?…aaa`). So the
    product of every choice the pattern leaves the matcher (repetition counts,
    alternatives) is bounded by `REGEX_CHOICES`: one unbounded repetition, and
    a few small choices beside it.
    """
    # One frame per open group: [holds a quantifier, holds an alternation]
    stack: list[list[bool]] = [[False, False]]
    branches = [1]  # alternatives of each open group
    choices = 1.0
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "\\":
            following = pattern[i + 1 : i + 2]
            if following in tuple("123456789"):
                return "backreferences are not allowed"
            if following == "N" and pattern[i + 2 : i + 3] == "{":
                close = pattern.find("}", i)
                i = n if close < 0 else close + 1
            else:
                i += 2
        elif char == "[":
            i = _skip_class(pattern, i)
        elif char == "(":
            if pattern.startswith("(?#", i):
                close = pattern.find(")", i)
                i = n if close < 0 else close + 1
                continue
            if pattern.startswith("(?P=", i) or pattern.startswith("(?(", i):
                return "backreferences are not allowed"
            flags = _FLAG_GROUP.match(pattern, i)
            if flags is not None:
                if "x" in flags.group(1):
                    return "verbose mode (?x) is not supported"
                i = flags.end()
                if flags.group(3) == ":":
                    stack.append([False, False])
                    branches.append(1)
                continue
            name = _GROUP_NAME.match(pattern, i)
            if name is not None:
                i = name.end()
            elif pattern.startswith(("(?<=", "(?<!"), i):
                i += 4
            elif pattern.startswith(("(?=", "(?!", "(?>"), i):
                i += 3
            else:
                i += 1
            stack.append([False, False])
            branches.append(1)
            continue
        elif char == ")":
            i += 1
            if len(stack) == 1:
                continue
            has_quantifier, has_alternation = stack.pop()
            choices *= branches.pop()
            most, end, count = _quantifier(pattern, i)
            choices *= count
            if most is not None:
                if most > 1 and has_quantifier:
                    return "a repeated group contains a nested quantifier"
                if most > 1 and has_alternation:
                    return "a repeated group contains an alternation"
                i = end
                stack[-1][0] = True
            stack[-1][0] = stack[-1][0] or has_quantifier
            stack[-1][1] = stack[-1][1] or has_alternation
            continue
        elif char == "|":
            stack[-1][1] = True
            branches[-1] += 1
            i += 1
            continue
        else:
            i += 1
        most, end, count = _quantifier(pattern, i)
        choices *= count
        if most is not None:
            stack[-1][0] = True
            i = end
    choices *= branches[0]
    if choices > REGEX_CHOICES:
        return (
            "it leaves the matcher too many ways to match (more than one unbounded "
            "repetition such as `*`, `+` or `{n,}`, or many alternatives and optional "
            "parts beside one); a search matches anywhere, so a leading or trailing "
            "`.*` is never needed"
        )
    return None


def _guard_pattern(pattern: str) -> str:
    r"""Rewrite a pattern so it cannot match a string longer than MAX_REGEX_SUBJECT.

    `\A(?=[\s\S]{0,N}\Z)[\s\S]*?(?:p)` matches exactly where `re.search(p)` would,
    but only tries at all when the whole string is at most N characters long.
    Global inline flags must stay at the very start.
    """
    leading = _LEADING_FLAGS.match(pattern)
    head = leading.group(0) if leading else ""
    body = pattern[len(head) :]
    return rf"{head}\A(?=[\s\S]{{0,{MAX_REGEX_SUBJECT}}}\Z)[\s\S]*?(?:{body})"


# -- canonical keys ----------------------------------------------------------


def _canonical(condition: Any) -> tuple[str, bool]:
    """A compact JSON-like key for `condition`, and whether it had to be truncated.

    Key order is kept (GrowthBook compares literal objects in key order), and
    non-JSON values get a tag so they never collide with JSON ones. Subclasses
    of JSON types key like their base type, as GrowthBook treats them alike.
    """
    parts: list[str] = []
    budget = MAX_NODES
    truncated = False

    def emit(value: Any, depth: int) -> None:
        nonlocal budget, truncated
        budget -= 1
        if budget < 0 or depth > MAX_DEPTH + 1:
            truncated = True
            parts.append("\u2026")
            return
        if value is None:
            parts.append("null")
        elif isinstance(value, bool):
            parts.append("true" if value else "false")
        elif isinstance(value, str):
            parts.append(_quote(value))
        elif isinstance(value, int):
            # hex() has no digit limit, and "0x" never reads as a decimal
            parts.append(str(int(value)) if -(10**18) < value < 10**18 else hex(value))
        elif isinstance(value, float):
            parts.append(repr(float(value)))
        elif isinstance(value, list):
            parts.append("[")
            for index, item in enumerate(value):
                if index:
                    parts.append(",")
                emit(item, depth + 1)
            parts.append("]")
        elif isinstance(value, dict):
            parts.append("{")
            for index, (key, item) in enumerate(value.items()):
                if index:
                    parts.append(",")
                if isinstance(key, str):
                    parts.append(_quote(key))
                else:  # never valid, so an identity-based key is enough
                    parts.append(f"<key {type(key).__name__}:{id(key)}>")
                parts.append(":")
                emit(item, depth + 1)
            parts.append("}")
        else:  # never valid, so an identity-based key is enough
            parts.append(f"<{type(value).__name__}:{id(value)}>")

    try:
        emit(condition, 1)
    except Exception:  # e.g. a broken __eq__ or __len__ in a foreign mapping
        return f"<unkeyable:{id(condition)}>", True
    return "".join(parts), truncated


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- compiled conditions -----------------------------------------------------


@dataclass(frozen=True, eq=False, slots=True)
class CompiledCondition:
    """A condition validated once, ready to be evaluated many times."""

    condition: Any
    problems: tuple[ConditionProblem, ...]
    key: str
    _runtime: dict[str, Any]
    _groups: tuple[str, ...]

    @property
    def valid(self) -> bool:
        """Whether the condition has no problems (an invalid one never matches)."""
        return not self.problems

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompiledCondition):
            return NotImplemented
        return self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        shown = self.key if len(self.key) <= 120 else self.key[:119] + "\u2026"
        state = "valid" if self.valid else f"{len(self.problems)} problem(s)"
        return f"CompiledCondition({shown}, {state})"

    @property
    def attributes(self) -> frozenset[str]:
        """The top-level attributes the condition reads (`cart` for `cart.value`)."""
        return read_attributes(self._runtime)

    def matches(
        self,
        attributes: Mapping[str, Any],
        groups: Mapping[str, Sequence[Any]] | None = None,
    ) -> bool:
        """Whether the attributes satisfy the condition; False if it is malformed."""
        if self.problems:
            STATS.count_malformed()
            return False
        try:
            if not isinstance(attributes, dict):
                attributes = dict(attributes) if isinstance(attributes, Mapping) else {}
            saved = _saved_groups(self._groups, groups) if self._groups else None
            return evalCondition(attributes, self._runtime, saved) is True
        except Exception:
            STATS.count_error()
            if _warned.add("error:" + self.key, True):
                logger.warning(
                    "targeting condition %s failed to evaluate", _preview(self.key), exc_info=True
                )
            return False


def read_attributes(condition: Any) -> frozenset[str]:
    """The top-level attribute names a (validated) condition document reads."""
    roots: set[str] = set()
    stack = [condition]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        for key, value in node.items():
            if key in _COMBINATORS and isinstance(value, list):
                stack.extend(value)
            elif key == "$not":
                stack.append(value)
            elif isinstance(key, str) and not key.startswith("$"):
                # An $elemMatch inside reads the same attribute's elements.
                roots.add(key.split(".", 1)[0])
    return frozenset(roots)


def _saved_groups(
    names: tuple[str, ...], groups: Mapping[str, Sequence[Any]] | None
) -> dict[str, list[Any]]:
    """The referenced groups as GrowthBook's savedGroups: a plain list per group id."""
    out: dict[str, list[Any]] = {}
    if not groups:
        return out
    for name in names:
        values = groups.get(name)
        if isinstance(values, list):
            out[name] = values
        elif values is not None and not isinstance(values, str | bytes):
            out[name] = list(values)
    return out


def _preview(key: str) -> str:
    return key if len(key) <= 200 else key[:199] + "\u2026"


def _compile(condition: Any, key: str, truncated: bool) -> CompiledCondition:
    walker = _walk(condition)
    problems = walker.problems
    if truncated and not problems:
        problems = [ConditionProblem(ROOT, "condition is too large or too deeply nested")]
    runtime = walker.runtime
    compiled = CompiledCondition(
        condition=condition,
        problems=tuple(problems),
        key=key,
        _runtime=runtime if isinstance(runtime, dict) and not problems else {},
        _groups=tuple(sorted(walker.groups)),
    )
    if problems and _warned.add(key, True):
        shown = "; ".join(str(problem) for problem in problems[:5])
        more = f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
        logger.warning(
            "malformed targeting condition %s never matches: %s%s", _preview(key), shown, more
        )
    return compiled


def compile_condition(condition: Any) -> CompiledCondition:
    """Validate `condition` once and return it ready for repeated evaluation."""
    key, truncated = _canonical(condition)
    return _compile(condition, key, truncated)


def evaluate(
    condition: Mapping[str, Any],
    attributes: Mapping[str, Any],
    groups: Mapping[str, Sequence[Any]] | None = None,
) -> bool:
    """True iff `condition` is valid and the attributes satisfy it; never raises."""
    try:
        key, truncated = _canonical(condition)
        compiled: CompiledCondition | None = _compiled_cache.get(key)
        if compiled is None:
            compiled = _compile(condition, key, truncated)
            _compiled_cache.add(key, compiled)
        return compiled.matches(attributes, groups)
    except Exception:  # defensive: nothing above is expected to raise
        STATS.count_error()
        logger.debug("condition evaluation failed", exc_info=True)
        return False
