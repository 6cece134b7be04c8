"""The bundled Debian build environment for tests, built once and kept between runs.

Building it takes about a minute (mmdebstrap downloads ~60 MB); so the archive is kept under
``~/.cache/cairn-test/buildenv/<key>/`` (``$CAIRN_TEST_CACHE`` overrides the base), keyed by
the declaration's content and the apt source lines it resolves to, and unpacked once into an
:class:`EnvironmentCache` beside it. Test runs in parallel (several worktrees) share both
safely: building holds a lock, and the cache's own locks guard unpacking and eviction.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from daemon.buildenv import bootstrap, declaration
from daemon.buildenv.build import build, remove_tree
from daemon.buildenv.cli import bundled_declaration
from daemon.buildenv.manifest import EnvRecord, archive_name, decode_record, record_name


def test_cache_base() -> Path:
    explicit = os.environ.get("CAIRN_TEST_CACHE")
    return Path(explicit) if explicit else Path.home() / ".cache" / "cairn-test"


@dataclass(frozen=True)
class BuiltEnv:
    record: EnvRecord
    archive: Path
    cache_dir: Path
    fresh: bool


def cached_environment(path: Path | None = None) -> BuiltEnv:
    """The environment of the declaration at ``path`` (default: the bundled one)."""
    decl = declaration.load(path or bundled_declaration())
    sources = bootstrap.sources_for(decl.base) if decl.base is not None else []
    key = hashlib.sha256("\n".join([decl.key(), *sources]).encode()).hexdigest()[:24]
    base = test_cache_base() / "buildenv"
    out = base / key
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(base / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        records = sorted(out.glob("*.json"))
        fresh = False
        if records:
            record = decode_record(records[0].read_bytes(), what=str(records[0]))
        else:
            remove_tree(out)  # what an interrupted build left, its mounts included
            record = build(decl, out, cache_dir=base / "packages").record
            fresh = True
        assert (out / record_name(record.digest)).is_file()
        return BuiltEnv(record, out / archive_name(record.digest), base / "cache", fresh)
    finally:
        os.close(fd)


def main(argv: list[str]) -> int:
    """``python -m tests.buildenv_cache [DECLARATION...]``: build (or find) the environments
    the tests use — the bundled one and the macro families' by default — ahead of the tests
    that need them (``tests/run`` starts this in the background)."""
    families = Path(__file__).resolve().parent / "buildenv" / "families.toml"
    for path in [Path(a) for a in argv] or [None, families]:
        built = cached_environment(path)
        print(f"{path or 'bundled'}: {built.archive} ({'built' if built.fresh else 'cached'})")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
