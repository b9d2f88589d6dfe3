"""The Dockerfile and deploy/compose.yaml, checked without Docker (none runs on this machine)."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import yaml

from gateway.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "deploy" / "compose.yaml"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return data


def test_the_image_is_python_311_slim_installs_the_project_and_runs_as_a_user() -> None:
    steps = instructions()
    assert steps[0] == ("FROM", "python:3.11-slim")
    runs = " ".join(args for keyword, args in steps if keyword == "RUN")
    assert 'pip install ".' in runs
    users = [args for keyword, args in steps if keyword == "USER"]
    assert users
    assert users[-1] not in ("root", "0")
    keywords = [keyword for keyword, _ in steps]
    assert keywords.index("USER") < keywords.index("CMD")
    command = next(args for keyword, args in steps if keyword == "CMD")
    assert command == '["python", "-m", "gateway", "serve", "--host", "0.0.0.0"]'


def test_the_image_copies_every_package_pyproject_installs() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    copied = set()
    for keyword, args in instructions():
        if keyword == "COPY":
            *sources, _ = shlex.split(args)
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: no such path"
                copied.add(source)
    assert packages <= copied, f"not copied: {sorted(packages - copied)}"
    # pip needs the files pyproject.toml names.
    assert {"pyproject.toml", "README.md", "LICENSE"} <= copied


def test_compose_runs_the_gateway_on_a_replica_set_and_redis() -> None:
    services = compose()["services"]
    assert set(services) == {"gateway", "mongo", "redis"}
    mongo = services["mongo"]
    assert mongo["command"][mongo["command"].index("--replSet") + 1] == "rs0"
    assert "rs.initiate" in mongo["healthcheck"]["test"][-1]
    gateway = services["gateway"]
    assert (COMPOSE.parent / gateway["build"]["context"] / gateway["build"]["dockerfile"]).samefile(
        DOCKERFILE
    )
    env = gateway["environment"]
    assert "replicaSet=rs0" in env["MONGODB_URI"]
    assert env["MONGODB_URI"].startswith("mongodb://mongo:27017/")
    assert env["CACHE_URL"] == "redis://redis:6379/0"
    assert gateway["depends_on"] == {
        "mongo": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }


def test_every_variable_compose_sets_is_a_setting() -> None:
    env = compose()["services"]["gateway"]["environment"]
    fields = {name.upper() for name in Settings.model_fields}
    assert set(env) <= fields, f"not settings: {sorted(set(env) - fields)}"
    # Secrets come from the operator's environment, never from the file.
    for name in ("EDGE_KEY_SECRET", "MODEL_SIGNING_KEY", "ADMIN_KEYS", "CMS_WEBHOOK_SECRET"):
        assert str(env[name]).startswith("${"), name


def test_the_build_context_leaves_out_the_virtualenv_and_tests() -> None:
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".git", ".venv", "tests"} <= set(ignored)


def test_the_image_preloads_the_jemalloc_it_links() -> None:
    steps = instructions()
    runs = " ".join(args for keyword, args in steps if keyword == "RUN")
    link = re.search(r"ln -s (\S+libjemalloc\.so\.2) (\S+)", runs)
    assert link is not None
    assert "libjemalloc2" in runs
    env = " ".join(args for keyword, args in steps if keyword == "ENV")
    assert f"LD_PRELOAD={link.group(2)}" in env
