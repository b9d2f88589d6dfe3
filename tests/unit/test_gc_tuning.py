"""Garbage collection tuned by the server entry points, never by building the app."""

from __future__ import annotations

import gc
import json
import subprocess
import sys

from common.gc_tuning import OLDER_THRESHOLDS, YOUNG_THRESHOLD
from gateway.app import create_app
from gateway.settings import Settings


def test_tune_gc_freezes_start_up_objects_and_collects_less_often() -> None:
    script = (
        "import gc, json; import gateway.app; from common.gc_tuning import tune_gc;"
        "before = gc.get_freeze_count();"
        "tune_gc(); print(json.dumps([before, gc.get_freeze_count(), gc.get_threshold()]))"
    )
    # A child process: freezing this one would keep every test's garbage for good.
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    before, frozen, threshold = json.loads(done.stdout)
    assert before == 0
    assert frozen > 100_000  # the gateway's modules, as `serve` has imported them
    assert tuple(threshold) == (YOUNG_THRESHOLD, *OLDER_THRESHOLDS)


def test_building_the_app_leaves_the_interpreter_defaults(settings: Settings) -> None:
    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
    create_app(settings)
    assert (gc.get_threshold(), gc.get_freeze_count()) == (threshold, frozen)
