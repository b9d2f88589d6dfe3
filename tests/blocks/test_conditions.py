"""Targeting conditions: GrowthBook semantics, validation, compilation and robustness."""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import pytest
from growthbook.core import evalCondition

from blocks import conditions
from blocks.conditions import (
    MAX_REGEX_SUBJECT,
    STATS,
    CompiledCondition,
    ConditionProblem,
    compile_condition,
    evaluate,
    validate,
)


@pytest.fixture(autouse=True)
def _fresh_state() -> Iterator[None]:
    conditions._clear_caches()
    STATS.reset()
    yield
    conditions._clear_caches()
    STATS.reset()


def case(condition: Any, attributes: Any, expected: bool, id: str) -> Any:
    return pytest.param(condition, attributes, expected, id=id)


SANTA = {
    "$and": [
        {"father.age": {"$gt": 65}},
        {"$or": [{"bday": {"$regex": "-12-25$"}}, {"name": "santa"}]},
    ]
}
NOR = {"$nor": [{"name": "john"}, {"age": {"$lt": 30}}]}
TAGS = {"tags": ["news", "sport", "tech"]}
CART = {
    "cart": {
        "items": [
            {"sku": "A1", "qty": 1, "price": 9.5},
            {"sku": "B2", "qty": 3, "price": 20},
        ]
    }
}
USER = {"user": {"address": {"country": "DE", "city": "Berlin"}, "tags": ["a", "b"]}}

# (condition, attributes, expected). Every valid condition here is also checked
# against growthbook.core.evalCondition directly, so the table documents the
# library's behaviour; ids marked "gb:" are where it may surprise.
CASES = [
    # -- logical operators ------------------------------------------------------
    case({}, {"a": 1}, True, "empty-condition-matches"),
    case({}, {}, True, "empty-condition-empty-attributes"),
    case({"$or": []}, {"a": 1}, True, "empty-or-matches"),
    case({"$and": []}, {"a": 1}, True, "empty-and-matches"),
    case({"$nor": []}, {"a": 1}, False, "gb:empty-nor-fails(negated-empty-or)"),
    case({"$and": [{"a": 1}, {"b": 2}]}, {"a": 1, "b": 2}, True, "and-all-true"),
    case({"$and": [{"a": 1}, {"b": 2}]}, {"a": 1, "b": 3}, False, "and-one-false"),
    case({"$or": [{"a": 1}, {"b": 2}]}, {"a": 1, "b": 3}, True, "or-first-true"),
    case({"$or": [{"a": 1}, {"b": 2}]}, {"a": 0, "b": 2}, True, "or-second-true"),
    case({"$or": [{"a": 1}, {"b": 2}]}, {"a": 0, "b": 0}, False, "or-none-true"),
    case(NOR, {"name": "jim", "age": 40}, True, "nor-none-true"),
    case(NOR, {"name": "john", "age": 40}, False, "nor-first-true"),
    case(NOR, {"name": "jim", "age": 20}, False, "nor-second-true"),
    case(NOR, {"name": "john", "age": 20}, False, "nor-both-true"),
    case({"$not": {"name": "hello"}}, {"name": "world"}, True, "not-top-level-pass"),
    case({"$not": {"name": "hello"}}, {"name": "hello"}, False, "not-top-level-fail"),
    case({"$not": {}}, {"a": 1}, False, "not-of-empty-condition-fails"),
    case({"a": 1, "b": 2}, {"a": 1, "b": 3}, False, "several-keys-are-anded"),
    case(
        SANTA,
        {"name": "santa", "bday": "1980-12-20", "father": {"age": 70}},
        True,
        "nested-and-or-pass",
    ),
    case(
        SANTA, {"name": "x", "bday": "1980-12-25", "father": {"age": 70}}, True, "nested-or-second"
    ),
    case(
        SANTA,
        {"name": "santa", "bday": "1980-12-25", "father": {"age": 65}},
        False,
        "nested-and-fail",
    ),
    case(
        SANTA, {"name": "x", "bday": "1980-11-25", "father": {"age": 70}}, False, "nested-or-fail"
    ),
    case({"$or": [{"$not": {"a": 1}}, {"b": 1}]}, {"a": 1, "b": 0}, False, "not-inside-or"),
    case(
        {"$and": [{"$or": [{"a": 1}]}, {"$nor": [{"b": 1}]}]}, {"a": 1, "b": 2}, True, "or-and-nor"
    ),
    # -- implicit equality --------------------------------------------------------
    case({"country": "US"}, {"country": "US"}, True, "eq-string"),
    case({"country": "US"}, {"country": "us"}, False, "eq-string-case-sensitive"),
    case({"country": "US"}, {"country": "DE"}, False, "eq-string-differs"),
    case({"n": 5}, {"n": 5}, True, "eq-number"),
    case({"n": 5}, {"n": 5.0}, True, "eq-int-equals-float"),
    case({"n": 5}, {"n": "5"}, False, "eq-number-vs-string"),
    case({"n": "5"}, {"n": 5}, False, "eq-string-vs-number"),
    case({"flag": True}, {"flag": True}, True, "eq-true"),
    case({"flag": False}, {"flag": False}, True, "eq-false"),
    case({"flag": True}, {"flag": 1}, False, "eq-true-vs-1"),
    case({"flag": False}, {"flag": 0}, False, "eq-false-vs-0"),
    case({"n": 1}, {"n": True}, False, "eq-1-vs-true"),
    case({"n": 0}, {"n": False}, False, "eq-0-vs-false"),
    case({"userId": None}, {"userId": None}, True, "eq-null-null"),
    case({"userId": None}, {}, True, "eq-null-missing"),
    case({"userId": None}, {"userId": ""}, False, "eq-null-empty-string"),
    case({"userId": None}, {"userId": 0}, False, "eq-null-zero"),
    case({"userId": None}, {"userId": False}, False, "eq-null-false"),
    case({"tags": ["a", "b"]}, {"tags": ["a", "b"]}, True, "eq-array-exact"),
    case({"tags": ["a", "b"]}, {"tags": ["b", "a"]}, False, "eq-array-order"),
    case({"tags": ["a", "b"]}, {"tags": ["a"]}, False, "eq-array-missing-item"),
    case({"tags": ["a", "b"]}, {"tags": ["a", "b", "c"]}, False, "eq-array-extra-item"),
    case({"tags": ["a", "b"]}, {"tags": "a b"}, False, "eq-array-vs-string"),
    case({"tags": [1, True]}, {"tags": [1, 1]}, False, "eq-array-true-vs-1-inside"),
    case({"o": {"k": "v"}}, {"o": {"k": "v"}}, True, "eq-object"),
    case({"o": {"k": "v"}}, {"o": {"k": "v", "x": 1}}, False, "eq-object-extra-key"),
    case({"o": {"k": "v"}}, {"o": {}}, False, "eq-object-missing-key"),
    case({"o": {"k": "v"}}, {"o": "k=v"}, False, "eq-object-vs-string"),
    case({"o": {"x": 1, "y": 2}}, {"o": {"y": 2, "x": 1}}, False, "gb:eq-object-key-order-matters"),
    case({"o": [{"a": [1, {"b": None}]}]}, {"o": [{"a": [1, {"b": None}]}]}, True, "eq-nested"),
    # -- dot paths ------------------------------------------------------------------
    case({"user.address.country": "DE"}, USER, True, "path-nested-object"),
    case({"user.address.country": "FR"}, USER, False, "path-nested-object-differs"),
    case({"user.address.zip": {"$exists": False}}, USER, True, "path-missing-leaf"),
    case({"user.phone.mobile": {"$exists": False}}, USER, True, "path-missing-branch"),
    case({"address.state": "CA"}, {"address": None}, False, "path-through-null"),
    case({"address.state": "CA"}, {"address": 123}, False, "path-through-number"),
    case({"user.tags.0": "a"}, USER, True, "path-array-index"),
    case({"user.tags.1": "b"}, USER, True, "path-array-index-1"),
    case({"cart.items.1.sku": "B2"}, CART, True, "path-index-then-field"),
    case({"user.tags.2": {"$exists": False}}, USER, True, "path-index-out-of-range"),
    case({"user.tags.01": {"$exists": False}}, USER, True, "gb:path-index-not-canonical"),
    case({"user.tags.length": 2}, USER, True, "gb:path-array-length"),
    case({"a.b": 1}, {"a.b": 1}, False, "gb:path-dotted-key-is-not-read-literally"),
    # -- missing attributes ---------------------------------------------------------
    case({"x": {"$exists": True}}, {}, False, "exists-true-missing"),
    case({"x": {"$exists": False}}, {}, True, "exists-false-missing"),
    case({"x": {"$exists": True}}, {"x": 1}, True, "exists-true-present"),
    case({"x": {"$exists": False}}, {"x": 1}, False, "exists-false-present"),
    case({"x": {"$exists": True}}, {"x": None}, False, "gb:exists-null-is-missing"),
    case({"x": {"$exists": True}}, {"x": 0}, True, "exists-zero"),
    case({"x": {"$exists": True}}, {"x": ""}, True, "exists-empty-string"),
    case({"x": {"$exists": True}}, {"x": False}, True, "exists-false-value"),
    case({"x": {"$ne": "a"}}, {}, True, "ne-missing-matches"),
    case({"x": {"$ne": None}}, {}, False, "ne-null-missing-fails"),
    case({"x": {"$eq": None}}, {}, True, "eq-op-null-missing"),
    case({"x": {"$in": ["a"]}}, {}, False, "in-missing"),
    case({"x": {"$in": ["a", None]}}, {}, True, "in-with-null-missing"),
    case({"x": {"$nin": ["a"]}}, {}, True, "nin-missing"),
    case({"x": {"$gt": 1}}, {}, False, "gt-missing"),
    case({"x": {"$lte": 1}}, {}, False, "lte-missing"),
    case({"x": {"$gt": -10, "$lt": 10}}, {}, False, "gb:comparisons-missing-all-fail"),
    case({"x": {"$regex": "a"}}, {}, False, "regex-missing"),
    case({"x": {"$notRegex": "a"}}, {}, True, "not-regex-missing"),
    case({"x": {"$size": 0}}, {}, False, "size-missing"),
    case({"x": {"$elemMatch": {"$gt": 1}}}, {}, False, "elem-match-missing"),
    case({"x": {"$all": []}}, {}, False, "all-missing"),
    case({"x": {"$veq": "1.0.0"}}, {}, False, "veq-missing"),
    case({"x": {"$vne": "1.0.0"}}, {}, True, "vne-missing"),
    # -- comparisons ----------------------------------------------------------------
    case({"age": {"$gt": 30}}, {"age": 31}, True, "gt-pass"),
    case({"age": {"$gt": 30}}, {"age": 30}, False, "gt-equal-fails"),
    case({"age": {"$gte": 30}}, {"age": 30}, True, "gte-equal"),
    case({"age": {"$gte": 30}}, {"age": 29}, False, "gte-fail"),
    case({"age": {"$lt": 30}}, {"age": 29}, True, "lt-pass"),
    case({"age": {"$lt": 30}}, {"age": 30}, False, "lt-equal-fails"),
    case({"age": {"$lte": 30}}, {"age": 30}, True, "lte-equal"),
    case({"age": {"$lte": 30}}, {"age": 31}, False, "lte-fail"),
    case({"age": {"$gt": 30, "$lt": 60}}, {"age": 45}, True, "range-pass"),
    case({"age": {"$gt": 30, "$lt": 60}}, {"age": 60}, False, "range-fail"),
    case({"ltv": {"$gte": 499.5}}, {"ltv": 500}, True, "float-vs-int"),
    case({"ltv": {"$gt": -1}}, {"ltv": -0.5}, True, "negative-float"),
    case({"w": {"$gt": "alphabet", "$lt": "zebra"}}, {"w": "always"}, True, "str-range-pass"),
    case({"w": {"$gt": "alphabet"}}, {"w": "alphabet"}, False, "str-gt-equal-fails"),
    case({"w": {"$gt": "alphabet"}}, {"w": "AZL"}, False, "str-uppercase-sorts-first"),
    case({"v": {"$lt": "9"}}, {"v": "10"}, True, "str-lexicographic-10-lt-9"),
    case({"v": {"$gt": "10"}}, {"v": "9"}, True, "str-lexicographic-9-gt-10"),
    case({"age": {"$gt": "10"}}, {"age": 9}, False, "number-vs-numeric-string-lower"),
    case({"age": {"$gt": "10"}}, {"age": 11}, False, "gb:number-vs-string-never-ordered"),
    case({"n": {"$gt": 5, "$lt": 10}}, {"n": "8"}, False, "gb:numeric-string-vs-number"),
    case({"n": {"$gte": 0}}, {"n": True}, False, "gb:boolean-not-ordered"),
    case({"n": {"$lt": 5}}, {"n": None}, False, "null-not-ordered"),
    case({"n": {"$lt": 5}}, {"n": [1]}, False, "array-not-ordered"),
    case({"n": {"$eq": 5}}, {"n": 5}, True, "eq-op-number"),
    case({"n": {"$eq": 5}}, {"n": "5"}, False, "eq-op-type-mismatch"),
    case({"n": {"$eq": True}}, {"n": 1}, False, "eq-op-true-vs-1"),
    case({"n": {"$ne": True}}, {"n": 1}, True, "ne-op-true-vs-1"),
    case({"n": {"$ne": 5}}, {"n": 5}, False, "ne-op-equal"),
    case({"n": {"$eq": [1]}}, {"n": [1]}, False, "gb:eq-op-array-never-equal"),
    case({"n": {"$ne": {"a": 1}}}, {"n": {"a": 1}}, True, "gb:ne-op-object-always-unequal"),
    # -- $in / $nin / $ini / $nini ----------------------------------------------------
    case({"num": {"$in": [1, 2, 3]}}, {"num": 2}, True, "in-pass"),
    case({"num": {"$in": [1, 2, 3]}}, {"num": 4}, False, "in-fail"),
    case({"c": {"$in": ["US", "CA"]}}, {"c": "CA"}, True, "in-string"),
    case({"c": {"$in": []}}, {"c": "CA"}, False, "in-empty-list"),
    case({"tags": {"$in": ["tech", "x"]}}, TAGS, True, "in-array-intersection"),
    case({"tags": {"$in": ["x", "y"]}}, TAGS, False, "in-array-disjoint"),
    case({"tags": {"$in": ["x"]}}, {"tags": []}, False, "in-empty-array-attribute"),
    case({"b": {"$in": [1]}}, {"b": True}, False, "in-true-vs-1"),
    case({"b": {"$in": [True]}}, {"b": 1}, False, "in-1-vs-true"),
    case({"b": {"$in": [False]}}, {"b": 0}, False, "in-0-vs-false"),
    case({"b": {"$in": [1]}}, {"b": [True]}, False, "in-array-true-vs-1"),
    case({"b": {"$in": [True]}}, {"b": [True, 5]}, True, "in-array-true"),
    case({"o": {"$in": [{"k": 1}]}}, {"o": {"k": 1}}, False, "gb:in-object-never-matches"),
    case({"num": {"$nin": [1, 2, 3]}}, {"num": 4}, True, "nin-pass"),
    case({"num": {"$nin": [1, 2, 3]}}, {"num": 2}, False, "nin-fail"),
    case({"tags": {"$nin": ["x", "y"]}}, TAGS, True, "nin-array-disjoint"),
    case({"tags": {"$nin": ["sport"]}}, TAGS, False, "nin-array-intersects"),
    case({"tags": {"$nin": ["x"]}}, {"tags": []}, True, "nin-empty-array-attribute"),
    case({"c": {"$ini": ["fr", "de"]}}, {"c": "FR"}, True, "ini-case-insensitive"),
    case({"c": {"$ini": ["FR"]}}, {"c": "de"}, False, "ini-fail"),
    case({"c": {"$ini": ["a"]}}, {"c": ["B", "A"]}, True, "ini-array-attribute"),
    case({"c": {"$ini": [1, "x"]}}, {"c": 1}, True, "ini-number"),
    case({"c": {"$nini": ["fr"]}}, {"c": "FR"}, False, "nini-fail"),
    case({"c": {"$nini": ["fr"]}}, {"c": "DE"}, True, "nini-pass"),
    case({"c": {"$nini": ["fr"]}}, {}, True, "nini-missing"),
    # -- $all / $alli -----------------------------------------------------------------
    case({"tags": {"$all": ["news", "tech"]}}, TAGS, True, "all-pass"),
    case({"tags": {"$all": ["news", "x"]}}, TAGS, False, "all-fail"),
    case({"tags": {"$all": ["news"]}}, {"tags": "news"}, False, "all-not-array"),
    case({"tags": {"$all": []}}, TAGS, True, "all-empty-list"),
    case({"n": {"$all": [{"$gt": 5}, {"$lt": 0}]}}, {"n": [10, -1]}, True, "all-operator-items"),
    case({"n": {"$all": [{"$gt": 5}, {"$lt": 0}]}}, {"n": [10, 1]}, False, "all-operator-fail"),
    case({"tags": {"$alli": ["NEWS", "Tech"]}}, TAGS, True, "alli-pass"),
    case({"tags": {"$alli": ["NEWS", "golf"]}}, TAGS, False, "alli-fail"),
    # -- $size ------------------------------------------------------------------------
    case({"tags": {"$size": 0}}, {"tags": []}, True, "size-zero"),
    case({"tags": {"$size": 0}}, {"tags": [10]}, False, "size-zero-fail"),
    case({"tags": {"$size": 3}}, TAGS, True, "size-number"),
    case({"tags": {"$size": 3}}, {"tags": ["a", "b"]}, False, "size-too-small"),
    case({"tags": {"$size": 3}}, {"tags": ["a", "b", "c", "d"]}, False, "size-too-large"),
    case({"tags": {"$size": 3}}, {"tags": "abc"}, False, "size-string-is-not-array"),
    case({"tags": {"$size": {"$gt": 2}}}, TAGS, True, "size-operator"),
    case({"tags": {"$size": {"$gt": 2}}}, {"tags": [0, 1]}, False, "size-operator-fail"),
    case({"tags": {"$size": {"$in": [1, 2]}}}, {"tags": [0, 1]}, True, "size-in"),
    # -- $elemMatch -------------------------------------------------------------------
    case({"nums": {"$elemMatch": {"$gt": 10}}}, {"nums": [0, 5, -20, 15]}, True, "elem-scalar"),
    case({"nums": {"$elemMatch": {"$gt": 10}}}, {"nums": [0, 5, 8]}, False, "elem-scalar-fail"),
    case({"nums": {"$elemMatch": {"$gt": 5, "$lt": 9}}}, {"nums": [1, 8]}, True, "elem-range"),
    case(
        {"nums": {"$elemMatch": {"$gt": 5, "$lt": 9}}}, {"nums": [1, 10]}, False, "elem-range-split"
    ),
    case({"tags": {"$elemMatch": {"$eq": "sport"}}}, TAGS, True, "elem-eq"),
    case({"tags": {"$elemMatch": {"$in": ["x", "tech"]}}}, TAGS, True, "elem-in"),
    case({"nums": {"$elemMatch": {"$eq": 0}}}, {"nums": [0]}, True, "elem-zero-element"),
    case(
        {"nums": {"$elemMatch": {"$exists": False}}}, {"nums": [None]}, False, "gb:elem-skips-null"
    ),
    case(
        {"cart.items": {"$elemMatch": {"sku": "B2", "qty": {"$gte": 2}}}}, CART, True, "elem-object"
    ),
    case(
        {"cart.items": {"$elemMatch": {"sku": "A1", "qty": {"$gte": 2}}}},
        CART,
        False,
        "elem-object-fail",
    ),
    case(
        {"cart.items": {"$elemMatch": {"$or": [{"sku": "Z"}, {"price": {"$gt": 10}}]}}},
        CART,
        True,
        "elem-object-or",
    ),
    case(
        {"h": {"$elemMatch": {"name": {"$regex": "^ping"}}}},
        {"h": [{"name": "pingpong"}]},
        True,
        "elem-regex",
    ),
    case({"h": {"$elemMatch": {"name": "x"}}}, {"h": "all"}, False, "elem-not-array"),
    case({"tags": {"$not": {"$elemMatch": {"$eq": "golf"}}}}, TAGS, True, "not-elem-match"),
    case({"tags": {"$not": {"$elemMatch": {"$eq": "news"}}}}, TAGS, False, "not-elem-match-fail"),
    # -- $type ------------------------------------------------------------------------
    case({"a": {"$type": "string"}}, {"a": "x"}, True, "type-string"),
    case({"a": {"$type": "string"}}, {"a": 1}, False, "type-string-fail"),
    case({"a": {"$type": "number"}}, {"a": 1}, True, "type-number-int"),
    case({"a": {"$type": "number"}}, {"a": 1.5}, True, "type-number-float"),
    case({"a": {"$type": "number"}}, {"a": True}, False, "type-bool-is-not-number"),
    case({"a": {"$type": "boolean"}}, {"a": False}, True, "type-boolean"),
    case({"a": {"$type": "boolean"}}, {"a": 0}, False, "type-boolean-fail"),
    case({"a": {"$type": "array"}}, {"a": [1]}, True, "type-array"),
    case({"a": {"$type": "array"}}, {"a": {"0": 1}}, False, "type-array-fail"),
    case({"a": {"$type": "object"}}, {"a": {"b": 1}}, True, "type-object"),
    case({"a": {"$type": "object"}}, {"a": [1]}, False, "type-object-fail"),
    case({"a": {"$type": "null"}}, {"a": None}, True, "type-null"),
    case({"a": {"$type": "null"}}, {"a": 0}, False, "type-null-fail"),
    case({"a": {"$type": "null"}}, {}, True, "gb:type-missing-is-null"),
    case({"a": {"$type": "undefined"}}, {}, False, "gb:type-undefined-never-matches"),
    # -- regex ------------------------------------------------------------------------
    case({"ua": {"$regex": "(Mobile|Tablet)"}}, {"ua": "Android Mobile"}, True, "regex-match"),
    case({"ua": {"$regex": "(Mobile|Tablet)"}}, {"ua": "Desktop"}, False, "regex-no-match"),
    case({"ua": {"$regex": "mobile"}}, {"ua": "Android Mobile"}, False, "regex-case-sensitive"),
    case(
        {"p": {"$regex": "^/products/[a-z0-9-]+$"}},
        {"p": "/products/red-shoe-42"},
        True,
        "regex-anchored",
    ),
    case(
        {"p": {"$regex": "^/products/[a-z0-9-]+$"}},
        {"p": "/x/products/a"},
        False,
        "regex-anchored-fail",
    ),
    case({"p": {"$regex": "shoe"}}, {"p": "/products/red-shoe"}, True, "regex-searches-anywhere"),
    case({"name": {"$regex": "/???***[)"}}, {"name": "hello"}, False, "regex-invalid-pattern"),
    case({"n": {"$regex": "12"}}, {"n": 123}, False, "gb:regex-number-attribute-not-stringified"),
    case({"ua": {"$regexi": "mobile"}}, {"ua": "Android MOBILE"}, True, "regexi-match"),
    case({"ua": {"$regexi": "tablet"}}, {"ua": "Android MOBILE"}, False, "regexi-no-match"),
    case({"ua": {"$notRegex": "bot"}}, {"ua": "Firefox"}, True, "not-regex-pass"),
    case({"ua": {"$notRegex": "bot"}}, {"ua": "googlebot"}, False, "not-regex-fail"),
    case({"ua": {"$notRegexi": "BOT"}}, {"ua": "googlebot"}, False, "not-regexi-fail"),
    case({"ua": {"$notRegexi": "BOT"}}, {"ua": "Firefox"}, True, "not-regexi-pass"),
    case({"l": {"$regex": "(?i)^(en|de)-[a-z]{2}$"}}, {"l": "DE-at"}, True, "regex-inline-flag"),
    case({"name": {"$not": {"$regex": "^hello"}}}, {"name": "world"}, True, "not-regex-op-pass"),
    case(
        {"name": {"$not": {"$regex": "^hello"}}}, {"name": "hello you"}, False, "not-regex-op-fail"
    ),
    case({"n": {"$not": 5}}, {"n": 6}, True, "not-literal"),
    case({"n": {"$not": {"$in": [1, 2]}}}, {"n": 2}, False, "not-in"),
    # -- versions ---------------------------------------------------------------------
    case({"v": {"$veq": "1.2.3"}}, {"v": "1.2.3"}, True, "veq"),
    case({"v": {"$veq": "1.2.3"}}, {"v": "v1.2.3"}, True, "veq-v-prefix"),
    case({"v": {"$veq": "v1.2.3"}}, {"v": "1.2.3"}, True, "veq-v-prefix-condition"),
    case({"v": {"$veq": "1.2.3"}}, {"v": "1.2.3+build.5"}, True, "veq-build-metadata"),
    case({"v": {"$vne": "1.2.3"}}, {"v": "1.2.4"}, True, "vne"),
    case({"v": {"$vne": "1.2.3"}}, {"v": "1.2.3-alpha"}, True, "vne-prerelease"),
    case({"v": {"$vne": "1.2.3"}}, {"v": "1.2.3"}, False, "vne-equal"),
    case({"v": {"$vgt": "1.9.0"}}, {"v": "1.10.0"}, True, "vgt-numeric-parts"),
    case({"v": {"$vlt": "1.9.0"}}, {"v": "1.10.0"}, False, "vlt-numeric-parts"),
    case({"v": {"$vlt": "1.0.0"}}, {"v": "1.0.0-beta"}, True, "prerelease-before-release"),
    case({"v": {"$vgt": "1.0.0-beta"}}, {"v": "1.0.0"}, True, "release-after-prerelease"),
    case({"v": {"$vlt": "1.0.0-beta"}}, {"v": "1.0.0-alpha"}, True, "alpha-before-beta"),
    case({"v": {"$vlt": "1.0.0-beta.11"}}, {"v": "1.0.0-beta.2"}, True, "prerelease-numbers"),
    case({"v": {"$vlt": "1.0.0"}}, {"v": "1.0.0-rc.1"}, True, "rc-before-release"),
    case(
        {"v": {"$vgt": "1.0.0-alpha", "$vlt": "1.0.0-beta"}},
        {"v": "1.0.0-ALPHA"},
        False,
        "prerelease-case",
    ),
    case({"v": {"$vgte": "2.0.0"}}, {"v": "2.0.0"}, True, "vgte-equal"),
    case({"v": {"$vlte": "2.0.0"}}, {"v": "2.0.0"}, True, "vlte-equal"),
    case({"v": {"$vgte": "2.0.0"}}, {"v": "1.99.99"}, False, "vgte-fail"),
    case({"v": {"$vlte": "2.0.0"}}, {"v": "2.0.1"}, False, "vlte-fail"),
    case({"v": {"$veq": "1.2.0"}}, {"v": "1.2"}, False, "gb:two-part-version-not-padded"),
    case({"v": {"$vlt": "1.2.0"}}, {"v": "1.2"}, True, "gb:two-part-version-sorts-first"),
    case({"v": {"$vgt": 1}}, {"v": 2}, True, "version-numbers"),
    case({"v": {"$vgt": 1}}, {"v": "1.2.3"}, False, "gb:version-number-vs-string-never-ordered"),
    case({"v": {"$vne": "1"}}, {"v": 1}, True, "gb:vne-type-mismatch-matches"),
    # -- malformed conditions evaluate False -------------------------------------------
    case({"name": {"$regx": "hello"}}, {"name": "hello"}, False, "unknown-operator"),
    case({"c": {"$inn": ["US"]}}, {"c": "US"}, False, "unknown-operator-typo"),
    case({"$not": {"c": {"$inn": ["US"]}}}, {"c": "DE"}, False, "unknown-operator-under-not"),
    case({"$nor": [{"c": {"$inn": ["US"]}}]}, {"c": "DE"}, False, "unknown-operator-under-nor"),
    case({"$or": "x"}, {"a": 1}, False, "or-not-a-list"),
    case({"$and": {"a": 1}}, {"a": 1}, False, "and-object-not-list"),
    case({"$or": [{"a": 1}, 5]}, {"a": 1}, False, "or-item-not-object"),
    case({"$not": [{"a": 1}]}, {"a": 2}, False, "not-top-level-list"),
    case({"num": {"$in": 1}}, {"num": 1}, False, "in-not-a-list"),
    case(
        {"$not": {"num": {"$in": 1}}}, {"num": 1}, False, "in-not-a-list-under-not(gb-alone:True)"
    ),
    case({"a": {}}, {"a": 1}, False, "empty-operator-object(gb-alone:True)"),
    case({"$savedGroup": {"id": "g"}}, {"a": 1}, False, "saved-group-unsupported"),
    case({"$in": [1]}, {"$in": 1}, False, "operator-at-condition-level"),
    case({"a": {"$regex": "(a+)+$"}}, {"a": "aaa"}, False, "redos-pattern-rejected"),
    case({"a": {"$type": "int"}}, {"a": 1}, False, "unknown-type-name"),
    case({"a": {"$exists": 1}}, {"a": 1}, False, "exists-not-boolean"),
]


def _raw(condition: Any, attributes: Any) -> bool:
    return bool(evalCondition(attributes, condition, None))


@pytest.mark.parametrize(("condition", "attributes", "expected"), CASES)
def test_evaluate(condition: Any, attributes: Any, expected: bool) -> None:
    assert evaluate(condition, attributes) is expected


@pytest.mark.parametrize(("condition", "attributes", "expected"), CASES)
def test_compiled_matches_and_agrees_with_growthbook(
    condition: Any, attributes: Any, expected: bool
) -> None:
    compiled = compile_condition(condition)
    assert compiled.matches(attributes) is expected
    if compiled.valid:
        # The table is GrowthBook's behaviour, not ours: a valid condition
        # evaluates exactly as the library does.
        assert _raw(condition, attributes) is expected


def test_case_table_is_broad() -> None:
    assert len(CASES) >= 150
    used = {op for c in [*CASES, *GROUP_CASES] for op in _operators(c.values[0])}
    assert used >= conditions.OPERATORS


def _operators(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(key, str) and key.startswith("$"):
                yield key
            yield from _operators(value)
    elif isinstance(node, list):
        for item in node:
            yield from _operators(item)


# -- groups ---------------------------------------------------------------------------

GROUPS = {"beta": ["u1", "u2"], "staff": ("u9",), "nums": [1, 2]}

GROUP_CASES = [
    pytest.param({"id": {"$inGroup": "beta"}}, {"id": "u1"}, GROUPS, True, id="in-group"),
    pytest.param({"id": {"$inGroup": "beta"}}, {"id": "u3"}, GROUPS, False, id="in-group-fail"),
    pytest.param({"id": {"$inGroup": "staff"}}, {"id": "u9"}, GROUPS, True, id="in-group-tuple"),
    pytest.param({"id": {"$inGroup": "nope"}}, {"id": "u1"}, GROUPS, False, id="in-unknown-group"),
    pytest.param({"id": {"$notInGroup": "beta"}}, {"id": "u3"}, GROUPS, True, id="not-in-group"),
    pytest.param({"id": {"$notInGroup": "beta"}}, {"id": "u2"}, GROUPS, False, id="not-in-fail"),
    pytest.param({"id": {"$notInGroup": "nope"}}, {"id": "u1"}, GROUPS, True, id="not-in-unknown"),
    pytest.param({"id": {"$inGroup": "beta"}}, {"id": "u1"}, None, False, id="in-no-groups"),
    pytest.param({"id": {"$notInGroup": "beta"}}, {"id": "u1"}, None, True, id="not-in-no-groups"),
    pytest.param({"ids": {"$inGroup": "beta"}}, {"ids": ["x", "u2"]}, GROUPS, True, id="in-array"),
    pytest.param({"n": {"$inGroup": "nums"}}, {"n": True}, GROUPS, False, id="in-true-vs-1"),
    pytest.param({"id": {"$inGroup": "beta"}}, {}, GROUPS, False, id="in-group-missing"),
    pytest.param(
        {"$or": [{"id": {"$inGroup": "staff"}}, {"id": {"$inGroup": "beta"}}]},
        {"id": "u2"},
        GROUPS,
        True,
        id="in-either-group",
    ),
    pytest.param(
        {"id": {"$inGroup": "beta"}},
        {"id": "u1"},
        MappingProxyType({"beta": ["u1"]}),
        True,
        id="groups-any-mapping",
    ),
]


@pytest.mark.parametrize(("condition", "attributes", "groups", "expected"), GROUP_CASES)
def test_groups(condition: Any, attributes: Any, groups: Any, expected: bool) -> None:
    assert evaluate(condition, attributes, groups) is expected
    assert compile_condition(condition).matches(attributes, groups) is expected


DOLLAR_ATTRIBUTES = [
    pytest.param({"$foo": 1}, {"$foo": 1}, True, id="literal"),
    pytest.param({"$foo": 1}, {"$foo": 2}, False, id="literal-differs"),
    pytest.param({"$foo": {"$exists": False}}, {}, True, id="missing"),
    pytest.param({"$groups": {"$elemMatch": {"$eq": "a"}}}, {"$groups": ["a"]}, True, id="groups"),
    pytest.param({"$not": {"$groups": {"$in": ["x"]}}}, {"$groups": ["a"]}, True, id="not-groups"),
]


@pytest.mark.parametrize(("condition", "attributes", "expected"), DOLLAR_ATTRIBUTES)
def test_a_dollar_key_that_is_no_operator_is_an_attribute(
    condition: Any, attributes: Any, expected: bool
) -> None:
    # GrowthBook reads it as an attribute path; Tessera used to refuse it as an operator.
    assert validate(condition) == []
    assert evaluate(condition, attributes) is expected
    assert evalCondition(attributes, condition) is expected


def test_group_lists_are_growthbook_saved_groups() -> None:
    condition = {"id": {"$inGroup": "beta"}}
    assert evalCondition({"id": "u1"}, condition, {"beta": ["u1"]}) is True


# -- run-time regex bound -------------------------------------------------------------


@pytest.mark.parametrize(
    ("operator", "length", "expected"),
    [
        pytest.param("$regex", MAX_REGEX_SUBJECT, True, id="regex-at-limit"),
        pytest.param("$regex", MAX_REGEX_SUBJECT + 1, False, id="regex-over-limit"),
        pytest.param("$regexi", MAX_REGEX_SUBJECT + 1, False, id="regexi-over-limit"),
        pytest.param("$notRegex", MAX_REGEX_SUBJECT, False, id="not-regex-at-limit"),
        pytest.param("$notRegex", MAX_REGEX_SUBJECT + 1, True, id="not-regex-over-limit"),
    ],
)
def test_regex_only_runs_on_bounded_strings(operator: str, length: int, expected: bool) -> None:
    condition = {"ua": {operator: "x$"}}
    assert evaluate(condition, {"ua": "x" * length}) is expected


def test_regex_bound_keeps_search_semantics() -> None:
    for pattern, text, expected in [
        ("^a", "ba", False),
        ("a$", "ba", True),
        ("(?m)^b", "a\nb", True),
        ("(?s)a.b", "a\nb", True),
        ("(?i)(?#note)A", "xa", True),
        ("(?<=x)a", "xa", True),
        ("\\bword\\b", "a word here", True),
        ("a|b", "cb", True),
    ]:
        assert evaluate({"s": {"$regex": pattern}}, {"s": text}) is expected, pattern
        assert _raw({"s": {"$regex": pattern}}, {"s": text}) is expected, pattern


def test_regex_bound_is_fast_on_long_values() -> None:
    compiled = compile_condition({"ua": {"$regex": "a.*d"}})
    assert compiled.valid
    started = time.perf_counter()
    assert compiled.matches({"ua": "a" * 1_000_000}) is False
    assert compiled.matches({"ua": "a" * MAX_REGEX_SUBJECT}) is False
    assert time.perf_counter() - started < 1.0


def test_original_condition_is_kept_for_display() -> None:
    condition = {"ua": {"$regex": "^Mozilla"}}
    compiled = compile_condition(condition)
    assert compiled.condition is condition
    assert condition == {"ua": {"$regex": "^Mozilla"}}


# -- validate -------------------------------------------------------------------------

PROBLEMS = [
    pytest.param(None, "(root)", "condition must be an object, got null", id="none"),
    pytest.param([], "(root)", "must be an object, got array", id="list"),
    pytest.param("x", "(root)", "got string", id="string"),
    pytest.param(
        {"$and": "x"}, "$and", "'$and' expects a list of conditions, got string", id="and"
    ),
    pytest.param({"$or": {"a": 1}}, "$or", "expects a list of conditions, got object", id="or"),
    pytest.param({"$nor": 1}, "$nor", "expects a list of conditions, got number", id="nor"),
    pytest.param(
        {"$and": [{}, 3]}, "$and[1]", "expected a condition object, got number", id="and-item"
    ),
    pytest.param({"$not": []}, "$not", "'$not' expects a condition object, got array", id="not"),
    pytest.param(
        {"$and": [{}, {"country": {"$inn": ["US"]}}]},
        "$and[1].country.$inn",
        "unknown operator '$inn' (did you mean '$in'?)",
        id="unknown-did-you-mean",
    ),
    pytest.param({"a": {"$regx": "x"}}, "a.$regx", "did you mean '$regex'?", id="regx"),
    pytest.param({"a": {"$IN": [1]}}, "a.$IN", "did you mean '$in'?", id="case-typo"),
    pytest.param({"a": {"$zzzzzz": 1}}, "a.$zzzzzz", "unknown operator '$zzzzzz'", id="unknown"),
    pytest.param({"$andd": []}, "$andd", "did you mean '$and'?", id="unknown-top-level"),
    pytest.param({"$OR": []}, "$OR", "did you mean '$or'?", id="top-level-case"),
    pytest.param({"$nto": {}}, "$nto", "did you mean '$not'?", id="top-level-typo"),
    pytest.param({"$in": [1]}, "$in", "must be applied to an attribute", id="value-op-top-level"),
    pytest.param(
        {"a": {"$or": []}}, "a.$or", "cannot be applied to an attribute", id="or-on-value"
    ),
    pytest.param({"$savedGroup": {"id": "g"}}, "$savedGroup", "unsupported operator", id="saved"),
    pytest.param({"a": {"$savedGroup": "g"}}, "a.$savedGroup", "unsupported", id="saved-value"),
    pytest.param({"a": {"$in": 5}}, "a.$in", "'$in' expects a list, got number", id="in"),
    pytest.param({"a": {"$nin": "x"}}, "a.$nin", "'$nin' expects a list", id="nin"),
    pytest.param({"a": {"$ini": {}}}, "a.$ini", "'$ini' expects a list", id="ini"),
    pytest.param({"a": {"$nini": None}}, "a.$nini", "'$nini' expects a list", id="nini"),
    pytest.param({"a": {"$all": "x"}}, "a.$all", "'$all' expects a list", id="all"),
    pytest.param({"a": {"$alli": 1}}, "a.$alli", "'$alli' expects a list", id="alli"),
    pytest.param({"a": {"$size": "3"}}, "a.$size", "number or an operator object", id="size"),
    pytest.param({"a": {"$size": {"x": 1}}}, "a.$size", "got object", id="size-literal-object"),
    pytest.param({"a": {"$size": True}}, "a.$size", "got boolean", id="size-bool"),
    pytest.param({"a": {"$size": {"$gtt": 1}}}, "a.$size.$gtt", "did you mean '$gt'", id="size-op"),
    pytest.param({"a": {"$exists": "yes"}}, "a.$exists", "expects true or false", id="exists"),
    pytest.param({"a": {"$type": "strng"}}, "a.$type", "did you mean 'string'?", id="type"),
    pytest.param({"a": {"$type": 1}}, "a.$type", "expects one of string, number", id="type-num"),
    pytest.param({"a": {"$elemMatch": [1]}}, "a.$elemMatch", "expects an object", id="elem"),
    pytest.param(
        {"a": {"$elemMatch": {"b": {"$gtt": 1}}}},
        "a.$elemMatch.b.$gtt",
        "unknown operator",
        id="elem-inner",
    ),
    pytest.param({"a": {"$regex": 5}}, "a.$regex", "expects a pattern string", id="regex"),
    pytest.param({"a": {"$regexi": "["}}, "a.$regexi", "invalid pattern", id="regexi"),
    pytest.param({"a": {"$notRegex": "a" * 257}}, "a.$notRegex", "longer than 256", id="long"),
    pytest.param({"a": {"$notRegexi": "(a+)+"}}, "a.$notRegexi", "catastrophic", id="redos"),
    pytest.param({"a": {"$gt": 2**70}}, "a.$gt", "fit in 64 bits", id="int-over-64-bits"),
    pytest.param({"a": {"$in": [1, -(2**63) - 1]}}, "a.$in[1]", "fit in 64 bits", id="int-in"),
    pytest.param({"a": {"$regex": "[[a]"}}, "a.$regex", "ambiguous pattern", id="regex-warns"),
    pytest.param({"a": {"$regex": "(?x) a+ "}}, "a.$regex", "verbose", id="regex-verbose"),
    pytest.param({"a": {"$veq": {"v": 1}}}, "a.$veq", "version string or number", id="veq"),
    pytest.param({"a": {"$vgt": True}}, "a.$vgt", "got boolean", id="vgt"),
    pytest.param({"a": {"$vlte": None}}, "a.$vlte", "got null", id="vlte"),
    pytest.param({"a": {"$inGroup": ["g"]}}, "a.$inGroup", "group name string", id="in-group"),
    pytest.param({"a": {"$notInGroup": 1}}, "a.$notInGroup", "group name string", id="not-in"),
    pytest.param({"a": {"$gt": [1]}}, "a.$gt", "'$gt' expects a number or a string", id="gt"),
    pytest.param({"a": {"$lte": {"x": 1}}}, "a.$lte", "got object", id="lte"),
    pytest.param({"a": {"$gte": None}}, "a.$gte", "got null", id="gte-null"),
    pytest.param({"a": {"$in": [1], "b": 2}}, "a.$in", "compared literally", id="mixed"),
    pytest.param({"a": {}}, "a", "empty object", id="empty-operator-object"),
    pytest.param({"a": {"$not": {"$gtt": 1}}}, "a.$not.$gtt", "unknown", id="not-value"),
    pytest.param({"a": {"$all": [{"$gtt": 1}]}}, "a.$all[0].$gtt", "unknown", id="all-item"),
    pytest.param({"a": float("nan")}, "a", "not JSON values", id="nan"),
    pytest.param({"a": {"$in": [1, {2}]}}, "a.$in[1]", "set is not a JSON value", id="set"),
    pytest.param({1: 2}, "(root)", "keys must be strings", id="int-key"),
    pytest.param({"a": (1, 2)}, "a", "tuple is not a JSON value", id="tuple"),
]


@pytest.mark.parametrize(("condition", "path", "message"), PROBLEMS)
def test_validate_reports_path_and_message(condition: Any, path: str, message: str) -> None:
    problems = validate(condition)
    assert any(p.path == path and message in p.message for p in problems), problems
    compiled = compile_condition(condition)
    assert not compiled.valid
    assert compiled.problems == tuple(problems)


def test_validate_reports_every_problem() -> None:
    condition = {
        "$and": [{"a": {"$inn": [1]}}, {"b": {"$exists": "y"}}],
        "c": {"$regex": "(a+)+", "$size": "x"},
    }
    assert [p.path for p in validate(condition)] == [
        "$and[0].a.$inn",
        "$and[1].b.$exists",
        "c.$regex",
        "c.$size",
    ]


@pytest.mark.parametrize(
    "condition",
    [
        pytest.param({}, id="empty"),
        pytest.param(SANTA, id="santa"),
        pytest.param({"$not": {"a": {"$not": {"$in": [1]}}}}, id="nots"),
        pytest.param({"a": {"$elemMatch": {"$not": {"$gt": 1}}}}, id="elem-not"),
        pytest.param({"a": {"$elemMatch": {}}}, id="elem-empty"),
        pytest.param({"a": {"$size": {"$gte": 1, "$lte": 3}}}, id="size-ops"),
        pytest.param({"a": {"$vgt": 1.5, "$vlt": "v2.0.0-rc.1"}}, id="versions"),
        pytest.param({"a": {"$type": "undefined"}}, id="type-undefined"),
        pytest.param({"a": {"$regex": "^(en|de)-[A-Z]{2}$"}}, id="regex"),
        pytest.param({"a": [1, {"b": None}], "c": {"d": "e"}}, id="literals"),
        pytest.param({"a": {"$eq": {"x": [1]}}}, id="eq-object"),
    ],
)
def test_validate_accepts(condition: Any) -> None:
    assert validate(condition) == []
    assert compile_condition(condition).valid


def test_depth_limit() -> None:
    def nested(levels: int) -> dict[str, Any]:
        node: dict[str, Any] = {}
        for _ in range(levels - 1):
            node = {"a": node}
        return node

    assert validate(nested(32)) == []
    problems = validate(nested(33))
    assert len(problems) == 1
    assert "deeper than 32" in problems[0].message
    assert problems[0].path == ".".join(["a"] * 32)

    deep_or: Any = {"x": 1}
    for _ in range(40):
        deep_or = {"$or": [deep_or]}
    assert any("deeper than 32" in p.message for p in validate(deep_or))
    assert evaluate(deep_or, {"x": 1}) is False


def test_too_many_values() -> None:
    problems = validate({"a": {"$in": list(range(conditions.MAX_NODES + 1))}})
    assert [p.message for p in problems] == ["condition is too large (more than 50000 values)"]


def test_problem_str() -> None:
    problem = ConditionProblem(path="$and[1].country.$inn", message="unknown operator '$inn'")
    assert str(problem) == "$and[1].country.$inn: unknown operator '$inn'"
    with pytest.raises(dataclasses.FrozenInstanceError):
        problem.path = "x"  # type: ignore[misc]


# -- ReDoS heuristic -----------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern",
    [
        "(a+)+$",
        "(a*)*",
        r"(\w+\s?)*$",
        "(a|a)*",
        "(a|aa)*",
        "(a|ab)*",
        "((a|b)c)+",
        "(?:x+y?)+z",
        "(a+){2,}",
        "(a+){,5}",
        "((ab)*)+",
        r"(.)\1",
        "(?P<w>a)(?P=w)",
        "(a)?(?(1)b|c)",
    ],
)
def test_backtracking_prone_patterns_are_rejected(pattern: str) -> None:
    problems = validate({"s": {"$regex": pattern}})
    assert len(problems) == 1
    assert problems[0].path == "s.$regex"
    assert "backtrack" in problems[0].message or "backreference" in problems[0].message


@pytest.mark.parametrize(
    "pattern",
    [
        "a*a*b",  # 14 s on 4,096 letters, through the search's own prefix
        "a*a*a*b",
        r"\w*\w*!",
        ".*.*=",
        ".*sale.*summer",
        r"[a-z]+@[a-z]+\.com",
        "a.*b.*c.*d",
        "a{0,1000}a{0,1000}b",
        "a?" * 14 + "a" * 14,
        "(?:a|a)" * 20 + "b",
    ],
)
def test_patterns_with_too_many_ways_to_match_are_rejected(pattern: str) -> None:
    problems = validate({"s": {"$regex": pattern}})
    assert [p.path for p in problems] == ["s.$regex"]
    assert "too many ways to match" in problems[0].message
    assert "`.*` is never needed" in problems[0].message


@pytest.mark.parametrize(
    "pattern",
    [
        "sale.*summer",
        "^/products/[a-z0-9-]+$",
        "^(en|de)-[A-Z]{2}$",
        "(Mobile|Tablet)",
        "-12-25$",
        r"^\d{4}-\d{2}-\d{2}$",
        "(?:ab)+",
        "(a+)?b",
        r"\(a+\){2}",  # escaped parentheses are no group: no nested repetition
        "[(|+]*x",
        "a{2,}",
        "(?i)^utm_[a-z]+$",
        r"\N{LATIN SMALL LETTER A}+",
        "x{}",
        "a{2,}b?",
        "a?" * 12 + "a" * 12,
        "(?:a|b)" * 8,
    ],
)
def test_safe_patterns_are_accepted(pattern: str) -> None:
    assert validate({"s": {"$regex": pattern}}) == []


def test_rejected_pattern_never_runs() -> None:
    started = time.perf_counter()
    assert evaluate({"s": {"$regex": "(a+)+$"}}, {"s": "a" * 40 + "!"}) is False
    assert time.perf_counter() - started < 1.0


# -- compile_condition ----------------------------------------------------------------


def test_compile_once_match_many(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled = compile_condition({"age": {"$gte": 18}, "country": {"$in": ["DE", "AT"]}})
    assert compiled.valid
    assert compiled.problems == ()

    def no_validation(_: Any) -> Any:
        raise AssertionError("matches() must not re-validate")

    monkeypatch.setattr(conditions, "_walk", no_validation)
    assert compiled.matches({"age": 30, "country": "AT"}) is True
    assert compiled.matches({"age": 17, "country": "AT"}) is False
    assert compiled.matches({"age": 30, "country": "FR"}) is False


def test_evaluate_caches_compiled_conditions(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    real = conditions._walk

    def counting(condition: Any) -> Any:
        calls.append(condition)
        return real(condition)

    monkeypatch.setattr(conditions, "_walk", counting)
    for age in (10, 20, 30):
        evaluate({"age": {"$gt": 15}}, {"age": age})
    assert len(calls) == 1
    # Key order is significant (literal objects compare in key order)
    evaluate({"o": {"x": 1, "y": 2}}, {"o": {"x": 1, "y": 2}})
    assert evaluate({"o": {"y": 2, "x": 1}}, {"o": {"x": 1, "y": 2}}) is False
    assert len(calls) == 3


def test_compiled_condition_is_frozen_and_comparable() -> None:
    first = compile_condition({"a": {"$in": [1, 2]}})
    second = compile_condition({"a": {"$in": [1, 2]}})
    assert first == second
    assert hash(first) == hash(second)
    assert first != compile_condition({"a": {"$in": [2, 1]}})
    assert isinstance(first, CompiledCondition)
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.condition = {}  # type: ignore[misc]
    assert "valid" in repr(first)


def test_compiled_condition_is_independent_of_later_mutation() -> None:
    condition: dict[str, Any] = {"c": {"$in": ["DE"]}}
    compiled = compile_condition(condition)
    condition["c"]["$in"].append("FR")
    assert compiled.matches({"c": "FR"}) is False
    assert compiled.matches({"c": "DE"}) is True


def test_attributes_may_be_any_mapping() -> None:
    compiled = compile_condition({"user.country": "DE"})
    assert compiled.matches(MappingProxyType({"user": {"country": "DE"}})) is True


# -- logging and metrics ----------------------------------------------------------------


def test_malformed_condition_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="blocks.conditions")
    bad = {"country": {"$inn": ["US"]}}
    assert evaluate(bad, {"country": "US"}) is False
    assert evaluate(copy.deepcopy(bad), {"country": "DE"}) is False
    compile_condition(copy.deepcopy(bad))
    records = [r for r in caplog.records if r.name == "blocks.conditions"]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    assert "country.$inn: unknown operator '$inn'" in records[0].getMessage()

    assert evaluate({"$or": 1}, {}) is False
    assert len([r for r in caplog.records if r.name == "blocks.conditions"]) == 2


def test_valid_conditions_do_not_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="blocks.conditions")
    evaluate({"a": {"$gt": 1}}, {"a": 2})
    assert [r for r in caplog.records if r.name == "blocks.conditions"] == []


def test_malformed_counter() -> None:
    assert STATS.malformed == 0
    evaluate({"a": {"$in": 5}}, {"a": 5})
    evaluate({"a": {"$in": 5}}, {"a": 5})
    evaluate({"a": {"$in": [5]}}, {"a": 5})
    assert STATS.malformed == 2
    compiled = compile_condition(None)
    assert STATS.malformed == 2  # compiling is not evaluating
    compiled.matches({})
    assert STATS.malformed == 3
    assert STATS.errors == 0
    STATS.reset()
    assert STATS.malformed == 0


# -- robustness -------------------------------------------------------------------------


def _deep(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = {"x": 1}
    for _ in range(levels):
        node = {"a": node}
    return node


def _cyclic() -> dict[str, Any]:
    node: dict[str, Any] = {}
    node["a"] = node
    return node


def _wide_dag() -> list[Any]:
    node: list[Any] = [1]
    for _ in range(60):
        node = [node, node]
    return node


JUNK = [
    pytest.param(None, id="none"),
    pytest.param([], id="list"),
    pytest.param("x", id="string"),
    pytest.param(42, id="number"),
    pytest.param(b"{}", id="bytes"),
    pytest.param({"$and": "x"}, id="and-string"),
    pytest.param({"$or": [None]}, id="or-none-item"),
    pytest.param({"$not": None}, id="not-none"),
    pytest.param({"a": {"$in": 5}}, id="in-number"),
    pytest.param({"a": {"$elemMatch": 5}}, id="elem-number"),
    pytest.param({"a": {"$regex": None}}, id="regex-none"),
    pytest.param({"a": {"$regex": "(" * 200}}, id="regex-unbalanced"),
    pytest.param({"a": {"$size": {"$size": {"$size": []}}}}, id="size-nest"),
    pytest.param({None: 1}, id="none-key"),
    pytest.param({("a",): 1}, id="tuple-key"),
    pytest.param({"a": object()}, id="object-value"),
    pytest.param({"a": float("inf")}, id="infinity"),
    pytest.param({"a": {"$gt": 10**5000}}, id="huge-int"),
    pytest.param(_deep(100), id="deep-100"),
    pytest.param(_deep(5000), id="deep-5000"),
    pytest.param(_cyclic(), id="cyclic"),
    pytest.param({"a": {"$in": _wide_dag()}}, id="exponential-dag"),
    pytest.param({"a": {"$inGroup": "g"}, "$nor": [{"$savedGroups": 1}]}, id="groups-junk"),
]


@pytest.mark.parametrize("condition", JUNK)
def test_junk_conditions_never_raise(condition: Any) -> None:
    assert isinstance(validate(condition), list)
    assert evaluate(condition, {"a": 1}, {"g": [1]}) in (True, False)
    assert compile_condition(condition).matches({"a": "x"}) in (True, False)


@pytest.mark.parametrize(
    "attributes",
    [
        pytest.param(None, id="none"),
        pytest.param([], id="list"),
        pytest.param("attrs", id="string"),
        pytest.param({"age": object()}, id="object-value"),
        pytest.param({"age": float("nan")}, id="nan"),
        pytest.param({"age": datetime(2024, 1, 1, tzinfo=UTC)}, id="datetime"),
        pytest.param({"age": {1, 2}}, id="set"),
        pytest.param({"tags": [[1], {"a": 1}, None]}, id="mixed-array"),
        pytest.param({"ua": 12345}, id="number-for-regex"),
        pytest.param(_deep(3000), id="deep-attributes"),
    ],
)
def test_junk_attributes_never_raise(attributes: Any) -> None:
    condition = {
        "$or": [
            {"age": {"$gt": 3, "$type": "number"}},
            {"tags": {"$elemMatch": {"$in": [1]}, "$all": [None]}},
            {"ua": {"$regex": "^1"}},
            {"a": {"$veq": "1.0.0"}},
            {"a": _deep(20)},
        ]
    }
    compiled = compile_condition(condition)
    assert compiled.valid, compiled.problems
    assert compiled.matches(attributes, {"g": [1]}) in (True, False)
    assert evaluate(condition, attributes) in (True, False)


def test_nan_attribute_does_not_compare() -> None:
    assert evaluate({"x": {"$gte": 0}}, {"x": float("nan")}) is False
    assert evaluate({"x": {"$ne": 1}}, {"x": float("nan")}) is True
