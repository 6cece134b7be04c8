"""Every benchmark in one run, and one table: each figure beside its target.

    .venv/bin/python bench/all.py [--broker amqp://guest:guest@127.0.0.1:5672] \\
        [--corpus ../shared/corpora/serpent-recipes] [--markdown]

Runs, each as its own process (so one's memory and threads do not weigh on the next):
``mass_rebuild.py`` on RabbitMQ and on the embedded broker, ``bus_throughput.py`` (whose raw
aio-pika run, measured in this same run, is the anchor that says how fast this machine and
broker are right now), ``plan_corpus.py``, ``plan_scale.py --recipes 50000`` and
``index_scale.py`` (5,000 and 50,000 packages). RabbitMQ runs get a vhost of their own,
deleted afterwards. Figures on a shared machine are noisy: compare runs by the anchor.

Prints the table (``--markdown`` for the README) and, last, one JSON object with every
benchmark's own JSON result.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.mass_farm import SystemBroker

BENCH = Path(__file__).resolve().parent
DEFAULT_CORPUS = BENCH.parent.parent / "shared" / "corpora" / "serpent-recipes"
Results = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Row:
    figure: str
    target: str
    value: Callable[[Results], str]


def _get(results: Results, bench: str, *keys: str) -> Any:
    value: Any = results.get(bench, {})
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _fmt(value: Any, unit: str = "", scale: float = 1.0, digits: int = 1) -> str:
    return "n/a" if value is None else f"{float(value) * scale:.{digits}f}{unit}"


def _cpu_per_build(results: Results) -> str:
    cpu = _get(results, "mass_rebuild_amqp", "cpu_s")
    done = _get(results, "mass_rebuild_amqp", "completed")
    if not cpu or not done:
        return "n/a"
    parts = ", ".join(f"{name.split(' ')[0]} {seconds * 1000 / done:.0f}"
                      for name, seconds in sorted(cpu.items(), key=lambda kv: -kv[1]))
    return f"{sum(cpu.values()) * 1000 / done:.0f} ms ({parts})"


def _index_row(results: Results) -> str:
    ratio = _get(results, "index_scale", "ratio") or {}
    kilobytes = _index(results, -1, "bytes_per_generation")
    return (f"{_fmt(_index(results, -1, 'median_ms'), ' ms')}, "
            f"{_fmt(kilobytes, ' KB', 1 / 1024, 0)} of index per generation; "
            f"x {_fmt(ratio.get('median_ms'), digits=2)} time, "
            f"x {_fmt(ratio.get('bytes_per_generation'), digits=2)} bytes")


def _index(results: Results, which: int, key: str) -> Any:
    runs = _get(results, "index_scale", "results")
    return runs[which].get(key) if runs else None


ROWS = (
    Row("`mass_rebuild.py --builders 8 --broker amqp://…` (835 recipes, noop)", "< 20 s",
        lambda r: _fmt(_get(r, "mass_rebuild_amqp", "elapsed_s"), " s")),
    Row("same, embedded broker", "< 25 s",
        lambda r: _fmt(_get(r, "mass_rebuild_embedded", "elapsed_s"), " s")),
    Row("CPU per build, all services (RabbitMQ run; builders = the bench process)", "< 30 ms",
        _cpu_per_build),
    Row("dispatch latency package-published → task-ready, p50 / p99 (RabbitMQ)",
        "< 10 ms / < 100 ms",
        lambda r: f"{_fmt(_get(r, 'mass_rebuild_amqp', 'p50_ms'), ' ms')} / "
                  f"{_fmt(_get(r, 'mass_rebuild_amqp', 'p99_ms'), ' ms')}"),
    Row("`bus_throughput.py`: cairn ÷ raw aio-pika, same run", "≥ 0.9",
        lambda r: f"{_fmt(_get(r, 'bus_throughput', 'ratio'), digits=2)} (raw aio-pika "
                  f"{_fmt(_get(r, 'bus_throughput', 'raw_per_s'), ' msg/s', digits=0)}: "
                  "the anchor)"),
    Row("`plan_corpus.py`: corpus mass-rebuild plan (read + plan)", "< 0.4 s",
        lambda r: f"{_fmt(_get(r, 'plan_corpus', 'total_s_median'), ' s', digits=2)} "
                  f"(read {_fmt(_get(r, 'plan_corpus', 'read_s_median'), ' s', digits=2)} + "
                  f"plan {_fmt(_get(r, 'plan_corpus', 'plan_s_median'), ' s', digits=2)})"),
    Row("`plan_scale.py --recipes 50000`: first plan / peak RSS", "< 5 s / < 400 MB",
        lambda r: f"{_fmt(_get(r, 'plan_scale', 'first_plan_s'), ' s')} / "
                  f"{_fmt(_get(r, 'plan_scale', 'peak_rss_mb'), ' MB', digits=0)}"),
    Row("same: 10-recipe commit, published tree / all tasks open, p50", "< 10 ms / < 30 ms",
        lambda r: f"{_fmt(_get(r, 'plan_scale', 'incremental_p50_ms'), ' ms')} / "
                  f"{_fmt(_get(r, 'plan_scale', 'incremental_all_open_p50_ms'), ' ms')}"),
    Row("`index_scale.py`: one publication into 50,000 packages; ratio to 5,000",
        "< 50 ms, at most 1.2 x", _index_row),
)


@contextlib.contextmanager
def vhost(broker: SystemBroker) -> Iterator[str]:
    name = f"cairn-bench-{uuid.uuid4().hex[:10]}"
    broker.add_vhost(name)
    try:
        yield f"{broker.url}/{name}"
    finally:
        broker.delete_vhost(name)


def run(name: str, argv: list[str], log: Path) -> dict[str, Any]:
    """One benchmark as a process; its last stdout line (JSON) is its result."""
    started = time.monotonic()
    print(f"== {name}: {' '.join(argv)}", file=sys.stderr, flush=True)
    with log.open("a") as out:
        done = subprocess.run([sys.executable, *argv], stdout=subprocess.PIPE, stderr=out,
                              text=True, check=False, cwd=BENCH.parent)
        out.write(done.stdout)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        print(f"   {name} failed ({done.returncode}); see {log}", file=sys.stderr)
        return {}
    print(f"   {name}: {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def table(results: Results, markdown: bool) -> str:
    header = ("figure", "measured", "target")
    rows = [(row.figure, row.value(results), row.target) for row in ROWS]
    if markdown:
        return "\n".join([f"| {' | '.join(header)} |", "|---|---|---|",
                          *(f"| {' | '.join(r)} |" for r in rows)])
    width = [max(len(r[i]) for r in (header, *rows)) for i in range(3)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, width, strict=True))
                     for r in (header, *rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5672",
                        help="RabbitMQ (administered with the system's rabbitmqctl)")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--log", type=Path, default=Path("bench-all.log"),
                        help="every benchmark's own output")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    broker = SystemBroker(args.broker)
    corpus = str(args.corpus)
    results: Results = {}
    with vhost(broker) as url:
        results["bus_throughput"] = run("bus_throughput", [
            "bench/bus_throughput.py", "--broker", url], args.log)
    results["mass_rebuild_amqp"] = run("mass_rebuild_amqp", [
        "bench/mass_rebuild.py", "--corpus", corpus, "--builders", "8", "--broker",
        args.broker], args.log)
    results["mass_rebuild_embedded"] = run("mass_rebuild_embedded", [
        "bench/mass_rebuild.py", "--corpus", corpus, "--builders", "8"], args.log)
    results["plan_corpus"] = run("plan_corpus", [
        "bench/plan_corpus.py", "--corpus", corpus], args.log)
    results["plan_scale"] = run("plan_scale", [
        "bench/plan_scale.py", "--recipes", "50000"], args.log)
    results["index_scale"] = run("index_scale", [
        "bench/index_scale.py", "--packages", "5000", "50000"], args.log)
    print(table(results, args.markdown))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
