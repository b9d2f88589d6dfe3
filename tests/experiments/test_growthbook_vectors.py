"""GrowthBook's shared SDK test vectors (vendored in data/, with attribution) pass, bit for bit."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from growthbook.common_types import (
    EvaluationContext,
    GlobalContext,
    Options,
    StackContext,
    UserContext,
)
from growthbook.common_types import Experiment as GBExperiment
from growthbook.core import run_experiment as gb_run_experiment

from blocks.conditions import compile_condition, evaluate, validate
from blocks.experiments import (
    Experiment,
    Factor,
    bucket_ranges,
    choose_variation,
    equal_weights,
    hash,
    in_namespace,
    run_experiment,
)

CASES: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "growthbook_cases.json").read_text(encoding="utf-8")
)
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def test_the_vectors_say_where_they_come_from() -> None:
    source = CASES["_source"]
    assert source["repository"] == "https://github.com/growthbook/growthbook"
    assert "MIT License" in source["license"]


@pytest.mark.parametrize(("seed", "value", "version", "expected"), CASES["hash"])
def test_hash(seed: str, value: str, version: int, expected: float | None) -> None:
    assert hash(seed, value, version) == expected


@pytest.mark.parametrize(("name", "args", "expected"), CASES["getBucketRange"])
def test_bucket_ranges(name: str, args: list[Any], expected: list[list[float]]) -> None:
    ranges = bucket_ranges(*args)
    assert len(ranges) == len(expected), name
    for (start, end), (want_start, want_end) in zip(ranges, expected, strict=True):
        assert start == pytest.approx(want_start, abs=1e-9), name
        assert end == pytest.approx(want_end, abs=1e-9), name


@pytest.mark.parametrize(("name", "n", "ranges", "expected"), CASES["chooseVariation"])
def test_choose_variation(name: str, n: float, ranges: list[list[float]], expected: int) -> None:
    assert choose_variation(n, [(a, b) for a, b in ranges]) == expected, name


@pytest.mark.parametrize(("name", "user", "namespace", "expected"), CASES["inNamespace"])
def test_in_namespace(name: str, user: str, namespace: list[Any], expected: bool) -> None:
    assert in_namespace(user, (namespace[0], namespace[1], namespace[2])) is expected, name


@pytest.mark.parametrize(("n", "expected"), CASES["getEqualWeights"])
def test_equal_weights(n: int, expected: list[float]) -> None:
    assert equal_weights(n) == pytest.approx(expected, abs=1e-8)


@pytest.mark.parametrize(("name", "condition", "attributes", "expected"), CASES["evalCondition"])
def test_conditions_on_an_attribute_named_groups(
    name: str, condition: Any, attributes: Any, expected: bool
) -> None:
    # `$groups - match` failed before: `$groups` was refused as an unknown operator.
    assert validate(condition) == [], name
    assert evaluate(condition, attributes) is expected, name
    assert compile_condition(condition).matches(attributes) is expected, name


def _experiment(feature: str, rule: dict[str, Any]) -> Experiment:
    """A GrowthBook feature rule as a Tessera experiment (variations by index)."""
    variations = rule["variations"]
    keys = tuple(m["key"] for m in rule["meta"]) if "meta" in rule else None
    keys = keys or tuple(str(i) for i in range(len(variations)))
    condition = rule.get("condition")
    return Experiment(
        key=rule.get("key", feature),
        factors=(Factor("block", keys),),
        combinations=tuple((key,) for key in keys),
        variation_keys=keys,
        weights=tuple(rule["weights"]) if "weights" in rule else None,
        coverage=rule.get("coverage", 1.0),
        hash_attribute=rule.get("hashAttribute", "id"),
        fallback_attribute=rule.get("fallbackAttribute"),
        seed=rule.get("seed"),
        hash_version=rule.get("hashVersion", 1),
        status="running",
        condition=compile_condition(condition) if condition is not None else None,
        bucket_version=rule.get("bucketVersion", 0),
        min_bucket_version=rule.get("minBucketVersion", 0),
        sticky=not rule.get("disableStickyBucketing", False),
    )


@pytest.mark.parametrize(
    ("name", "context", "feature", "expected", "expected_docs"), CASES["stickyBucket"]
)
def test_sticky_buckets(
    name: str,
    context: dict[str, Any],
    feature: str,
    expected: dict[str, Any] | None,
    expected_docs: dict[str, Any],
) -> None:
    (rule,) = context["features"][feature]["rules"]
    experiment = _experiment(feature, rule)
    docs = dict(context.get("stickyBucketAssignmentDocs", {}))
    result, saved = run_experiment(
        experiment, context["attributes"], now=NOW, sticky_docs=docs, sticky=True
    )
    if saved is not None:
        docs[f"{saved['attributeName']}||{saved['attributeValue']}"] = saved
    assert docs == expected_docs, name
    if expected is None:
        assert not result.in_experiment, name
        return
    got = {
        "bucket": result.bucket,
        "hashAttribute": result.hash_attribute,
        "hashUsed": result.hash_used,
        "hashValue": result.hash_value,
        "inExperiment": result.in_experiment,
        "key": result.variation_key,
        "stickyBucketUsed": result.sticky_used,
        "variationId": result.variation,
    }
    want = {k: v for k, v in expected.items() if k not in ("featureId", "value")}
    assert got == want, name


def _random_rule(rng: random.Random) -> dict[str, Any]:
    n = rng.randint(2, 4)
    rule: dict[str, Any] = {"key": f"exp-{rng.randrange(10**6)}", "variations": list(range(n))}
    if rng.random() < 0.5:
        raw = [rng.random() + 0.01 for _ in range(n)]
        rule["weights"] = [w / sum(raw) for w in raw]
    if rng.random() < 0.5:
        rule["coverage"] = rng.choice([0.0, 0.25, 0.5, 0.99, 1.0])
    if rng.random() < 0.5:
        rule["seed"] = f"seed-{rng.randrange(1000)}"
    rule["hashVersion"] = rng.choice([1, 2])
    if rng.random() < 0.3:
        start = rng.choice([0.0, 0.3, 0.5])
        rule["namespace"] = ["ns", start, start + 0.4]
    return rule


def test_assignment_agrees_with_growthbooks_run_experiment() -> None:
    rng = random.Random(14)
    agreed = 0
    for _ in range(3000):
        rule = _random_rule(rng)
        user = rng.choice([f"v-{rng.randrange(10**9)}", str(rng.randrange(1, 10**6)), ""])
        ours = _experiment("f", rule)
        if "namespace" in rule:
            ns = rule["namespace"]
            ours = Experiment(**{**_fields(ours), "namespace": (ns[0], ns[1], ns[2])})
        result, _ = run_experiment(ours, {"id": user}, now=NOW, sticky=False)
        context = EvaluationContext(
            user=UserContext(attributes={"id": user}),
            global_ctx=GlobalContext(options=Options()),
            stack=StackContext(),
        )
        theirs = gb_run_experiment(
            GBExperiment(
                key=rule["key"],
                variations=rule["variations"],
                weights=rule.get("weights"),
                coverage=rule.get("coverage"),
                seed=rule.get("seed"),
                hashVersion=rule["hashVersion"],
                namespace=tuple(rule["namespace"]) if "namespace" in rule else None,
            ),
            evalContext=context,
        )
        assert (result.in_experiment, result.variation, result.bucket) == (
            theirs.inExperiment,
            theirs.variationId,
            theirs.bucket if theirs.inExperiment else None,
        ), rule
        agreed += result.in_experiment
    # The sample exercised real assignments, not only exclusions.
    assert agreed > 1000


def _fields(experiment: Experiment) -> dict[str, Any]:
    return {name: getattr(experiment, name) for name in Experiment.__dataclass_fields__}
