"""Benchmark assembling a per-build root: a build environment plus 20 dependency packages.

Cold: the environment archive is verified and unpacked into an empty cache, the 20 packages
are unpacked into an empty package cache, then the root is assembled. Warm: both caches are
filled, so a root costs only its hard-link farm. Removal of a root is timed too. Uses the
bundled Debian environment (built once and kept under ``~/.cache/cairn-test``, as the tests
do) unless ``--archive``/``--record`` name another. Prints figures, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daemon.avalanche.packaging import PackageMeta, write_package
from daemon.avalanche.split import PackagePlan
from daemon.buildenv import archive, buildroot
from daemon.buildenv.cache import EnvironmentCache
from daemon.buildenv.manifest import EnvRecord, decode_record
from daemon.buildenv.pkgcache import PackageCache
from tests.buildenv_cache import cached_environment


def _packages(out: Path, count: int, files: int) -> list[tuple[Path, str]]:
    """``count`` real packages of ``files`` files each (a library, headers, a .pc file)."""
    made = []
    for i in range(count):
        name = f"dep{i:02d}"
        install = out / f"install-{name}"
        paths = [f"usr/lib/lib{name}.so.1", f"usr/lib/pkgconfig/{name}.pc"]
        paths += [f"usr/include/{name}/h{j}.h" for j in range(files - 2)]
        for rel in paths:
            (install / rel).parent.mkdir(parents=True, exist_ok=True)
            (install / rel).write_bytes(f"{name} {rel}\n".encode() * 64)
        plan = PackagePlan(name, "bench", tuple(sorted(paths)), (), (name,))
        meta = PackageMeta(source=name, version="1", release=1, build_release=1, arch="x86_64")
        _manifest, path = write_package(plan, install, meta, out / "pkgs")
        made.append((path, archive.sha256_file(path)))
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--archive", type=Path, help="an environment archive (.tar.zst)")
    parser.add_argument("--record", type=Path, help="its record (.json)")
    parser.add_argument("--deps", type=int, default=20)
    parser.add_argument("--files", type=int, default=30, help="files per dependency")
    parser.add_argument("--warm", type=int, default=10, help="warm assemblies to time")
    args = parser.parse_args()
    if args.archive is not None and args.record is not None:
        env_archive = args.archive
        record: EnvRecord = decode_record(args.record.read_bytes(), what=str(args.record))
    else:
        built = cached_environment()
        env_archive, record = built.archive, built.record
    with tempfile.TemporaryDirectory(dir=Path.home()) as tmp:
        work = Path(tmp)
        deps = _packages(work / "src", args.deps, args.files)
        started = time.perf_counter()
        cache = EnvironmentCache(work / "envs")
        env = cache.add(env_archive, record)
        env_s = time.perf_counter() - started
        packages = PackageCache(work / "packages")
        started = time.perf_counter()
        unpacked = [packages.unpacked(path, sha) for path, sha in deps]
        deps_s = time.perf_counter() - started
        stats = buildroot.assemble(env.root, unpacked, work / "roots" / "cold")
        cold_s = env_s + deps_s + stats.seconds
        warm, warm_cpu, removal = [], [], []
        for i in range(args.warm):
            started, cpu = time.perf_counter(), time.process_time()
            unpacked = [packages.unpacked(path, sha) for path, sha in deps]
            stats = buildroot.assemble(env.root, unpacked, work / "roots" / f"w{i}")
            warm.append(time.perf_counter() - started)
            warm_cpu.append(time.process_time() - cpu)
            started = time.perf_counter()
            buildroot.remove(work / "roots" / f"w{i}")
            removal.append(time.perf_counter() - started)
        archive.make_writable(work)
    figures = {
        "environment": record.manifest.name,
        "environment_files": record.manifest.files,
        "environment_mb": round(record.manifest.size / 1e6, 1),
        "deps": args.deps,
        "files_per_dep": args.files,
        "root_links": stats.linked,
        "root_dirs": stats.dirs,
        "cold_env_verify_unpack_s": round(env_s, 3),
        "cold_deps_unpack_s": round(deps_s, 3),
        "cold_total_s": round(cold_s, 3),
        "warm_median_s": round(statistics.median(warm), 3),
        "warm_max_s": round(max(warm), 3),
        # CPU (user + system) of this process: what a busy machine's disk does not inflate.
        "warm_cpu_median_s": round(statistics.median(warm_cpu), 3),
        "remove_median_s": round(statistics.median(removal), 3),
    }
    for key, value in figures.items():
        print(f"{key:>26}: {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
