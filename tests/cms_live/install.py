"""Install the live-test CMSs (Directus 11, Strapi 5) and CMS tools from npm into a cache folder.

Each app's `package.json` and `package-lock.json` (beside this file) are
installed with `npm ci` into `<cache>/<app>-<digest of the two files>`, so a
changed pin installs afresh and an unchanged one is reused between runs. The
cache is `$TESSERA_CMS_CACHE`, else `~/.cache/tessera-cms`. Run
`python -m tests.cms_live.install` (scripts/test.sh does, before pytest) to
install both and print how long each took; the test fixtures call `ensure`
too, so a plain `pytest tests/cms_live` also works, just slower the first time.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent
CACHE_ENV = "TESSERA_CMS_CACHE"
STAMP = ".tessera-installed"
#: A cold install compiles native modules (isolated-vm, sqlite3, better-sqlite3).
INSTALL_TIMEOUT = 2400.0


class InstallError(RuntimeError):
    """npm could not install a CMS; the message carries npm's own output."""


@dataclass(frozen=True)
class NpmApp:
    """One CMS as an npm project: its pinned manifest and lockfile."""

    name: str
    source: Path

    def digest(self) -> str:
        """A short hash of the manifest and lockfile: the cache folder's version."""
        sha = hashlib.sha256()
        for file in ("package.json", "package-lock.json"):
            sha.update((self.source / file).read_bytes())
        return sha.hexdigest()[:12]


DIRECTUS = NpmApp("directus", HERE / "directus_app")
STRAPI = NpmApp("strapi", HERE / "strapi_app")
#: The vendors' own offline checkers: contentful-migration's parser, `sanity schema validate`.
TOOLS = NpmApp("tools", HERE / "tools_app")
APPS = (DIRECTUS, STRAPI, TOOLS)


def cache_root() -> Path:
    """Where installs are kept between runs."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "tessera-cms"


def install_dir(app: NpmApp) -> Path:
    """The folder holding `node_modules` for this exact pin."""
    return cache_root() / f"{app.name}-{app.digest()}"


def ensure(app: NpmApp) -> tuple[Path, float | None]:
    """The app's install folder, installing it first if needed; seconds spent or None."""
    target = install_dir(app)
    if (target / STAMP).exists():
        return target, None
    target.parent.mkdir(parents=True, exist_ok=True)
    # One installer at a time per app, across processes (parallel sessions share the cache).
    with open(target.parent / f".{app.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / STAMP).exists():
            return target, None
        started = time.monotonic()
        partial = target.parent / f"{target.name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        for file in ("package.json", "package-lock.json"):
            shutil.copy2(app.source / file, partial / file)
        result = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=partial,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
            check=False,
        )
        if result.returncode != 0:
            tail = (result.stdout + result.stderr)[-4000:]
            raise InstallError(f"npm ci for {app.name} failed ({result.returncode}):\n{tail}")
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
        (target / STAMP).write_text(f"{time.time()}\n")
        for stale in target.parent.glob(f"{app.name}-*"):
            if stale != target and stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
        return target, time.monotonic() - started


def main() -> int:
    """Install every app, printing where and whether it was cached."""
    for app in APPS:
        started = time.monotonic()
        try:
            folder, spent = ensure(app)
        except (InstallError, subprocess.TimeoutExpired) as exc:
            print(f"{app.name}: install failed: {exc}", file=sys.stderr)
            return 1
        if spent is None:
            print(f"{app.name}: cached in {folder} ({time.monotonic() - started:.1f} s)")
        else:
            print(f"{app.name}: installed into {folder} in {spent:.0f} s (cold)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
