"""How long does vessel take to check an archive's symlinks, by the shape of its links?

Builds real archives (zstd tar, as a builder sends them) holding a chain of ``n`` links
(``l1 -> l2 -> ... -> ln -> file``) and a fan of many links into one long chain, runs the
archive inspection an import runs, and prints the seconds and resolution steps per shape.

    .venv/bin/python bench/vessel_symlinks.py --lengths 10 20 40 --fan 20000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daemon.vessel.archive import inspect_archive
from daemon.vessel.config import ArchiveLimits
from daemon.vessel.symlinks import SymlinkModel
from tests.unit.vessel.builders import Pkg, archive_bytes


def chain(length: int) -> dict[str, str]:
    links = {f"usr/lib/l{i}": f"l{i + 1}" for i in range(1, length)}
    links[f"usr/lib/l{length}"] = "../bin/tool"
    return links


def measure(label: str, links: dict[str, str], workdir: Path) -> None:
    pkg = Pkg(name="tool", files={"usr/bin/tool": b"tool\n"}, symlinks=links)
    path = workdir / pkg.filename
    path.write_bytes(archive_bytes(pkg))
    started = time.perf_counter()
    inspect_archive(path, pkg.filename, ArchiveLimits(10**9, 10**6, 10**9))
    seconds = time.perf_counter() - started
    model = SymlinkModel(links)
    model.check(list(links))
    print(f"{label:>28}: {len(links):>6} links, {path.stat().st_size:>8} bytes, "
          f"{model.steps:>8} steps, {seconds:.4f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[10, 20, 25, 30, 40])
    parser.add_argument("--fan", type=int, default=20_000,
                        help="links pointing at the top of a 39-link chain")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for length in args.lengths:
            measure(f"chain of {length}", chain(length), Path(tmp))
        fan = chain(39)
        fan.update({f"usr/share/s{i}": "../lib/l1" for i in range(args.fan)})
        measure(f"fan of {args.fan} into 39", fan, Path(tmp))


if __name__ == "__main__":
    main()
