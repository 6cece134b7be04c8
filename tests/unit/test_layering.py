"""The floors of the tree, checked from the source: what each package may import.

* ``daemon.summit.planning`` is pure: no module there imports anything that does I/O (files,
  sockets, processes, databases, brokers, git, HTTP, clocks used for decisions), so planning
  is testable without a broker and a recorded run replays to the same decisions.
* ``daemon.formats`` (the one reader of each file format) is pure too, so the planning core
  may read recipes through it.
* The services never import each other: summit, avalanche, vessel and the journal meet only
  on the bus (``events``) and in the shared modules (``daemon.package``, ``daemon.runtime``...).
* ``events`` (the contract) imports nothing of ``daemon``.
* No import circle anywhere in ``daemon`` and ``events``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.summit.planning.graph import strongly_connected

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("summit", "avalanche", "vessel", "journal")

#: Modules that do I/O or read the environment; none may be imported by the planning core.
IO_MODULES = frozenset({
    "os", "io", "pathlib", "shutil", "tempfile", "subprocess", "socket", "select", "ssl",
    "asyncio", "threading", "multiprocessing", "sqlite3", "urllib.request", "http", "time",
    "aiohttp", "aiosqlite", "aio_pika", "aiormq", "aiomqtt", "pygit2", "structlog", "logging",
    "daemon.runtime", "daemon.host", "daemon.metrics", "events.bus", "events.amqp",
    "events.memory", "events.sqlite", "events.outbox", "events.inbox", "events.telemetry",
})
#: Project modules the planning core may use: its own, the file formats, the package format,
#: the event payloads.
PLANNING_MAY_IMPORT = ("daemon.summit.planning", "daemon.formats", "daemon.package",
                       "events.payloads", "events.errors", "events.names")
#: Project modules the file formats may use.
FORMATS_MAY_IMPORT = ("daemon.formats", "daemon.package", "events.payloads", "events.errors")


def _modules(package: str) -> Iterator[tuple[str, Path]]:
    base = ROOT / package.replace(".", "/")
    for path in sorted(base.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        yield ".".join(parts), path


def _imports(module: str, path: Path, known: frozenset[str] = frozenset()) -> set[str]:
    """Absolute names of the modules ``path`` imports (relative imports resolved).

    ``from pkg import mod`` counts as importing ``pkg.mod`` alone when ``mod`` is one of the
    ``known`` modules, and ``pkg`` itself otherwise."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            names = [f"{prefix}.{alias.name}" for alias in node.names]
            found.update(n for n in names if n in known)
            if any(n not in known for n in names):
                found.add(prefix)
    return found


def _within(name: str, prefixes: tuple[str, ...] | frozenset[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


ALL = {m: p for pkg in ("daemon", "events") for m, p in _modules(pkg)}
KNOWN = frozenset(ALL)
GRAPH = {m: {i for i in _imports(m, p, KNOWN) if i in ALL and i != m} for m, p in ALL.items()}


def test_the_tree_is_found() -> None:
    assert "daemon.summit.planning.planner" in ALL
    assert "events.consume" in ALL


@pytest.mark.parametrize("module", sorted(m for m in ALL if m.startswith("daemon.summit.planning")))
def test_planning_imports_no_io(module: str) -> None:
    imported = _imports(module, ALL[module], KNOWN)
    io = sorted(i for i in imported if _within(i, IO_MODULES))
    assert not io, f"{module} (planning core) imports I/O modules: {io}"
    foreign = sorted(i for i in imported if (i.startswith("daemon.") or i.startswith("events."))
                     and not _within(i, PLANNING_MAY_IMPORT))
    assert not foreign, f"{module} (planning core) imports {foreign}; it may only import " \
                        f"{', '.join(PLANNING_MAY_IMPORT)}"


@pytest.mark.parametrize("module", sorted(m for m in ALL if m.startswith("daemon.formats")))
def test_formats_import_no_io(module: str) -> None:
    imported = _imports(module, ALL[module], KNOWN)
    io = sorted(i for i in imported if _within(i, IO_MODULES))
    assert not io, f"{module} (a file format) imports I/O modules: {io}"
    foreign = sorted(i for i in imported if (i.startswith("daemon.") or i.startswith("events."))
                     and not _within(i, FORMATS_MAY_IMPORT))
    assert not foreign, f"{module} (a file format) imports {foreign}; it may only import " \
                        f"{', '.join(FORMATS_MAY_IMPORT)}"


def test_formats_are_found() -> None:
    assert {"daemon.formats.stone", "daemon.formats.manifest", "daemon.formats.layout"} <= set(ALL)


@pytest.mark.parametrize("service", SERVICES)
def test_services_do_not_import_each_other(service: str) -> None:
    others = tuple(f"daemon.{s}" for s in SERVICES if s != service)
    bad = sorted((m, i) for m in ALL if _within(m, (f"daemon.{service}",))
                 for i in _imports(m, ALL[m], KNOWN) if _within(i, others))
    assert not bad, f"daemon.{service} imports another service: {bad}"


def test_events_imports_nothing_of_daemon() -> None:
    bad = sorted((m, i) for m in ALL if m.startswith("events")
                 for i in _imports(m, ALL[m], KNOWN) if i.startswith("daemon"))
    assert not bad, f"the contract package imports the services: {bad}"


#: The modules that may hold SQL: each service's store, and the outbox/inbox/SQLite helpers
#: of the contract package that every store builds on.
SQL_HOMES = ("daemon.summit.store", "daemon.summit.schema", "daemon.summit.queries",
             "daemon.vessel.store", "daemon.journal.store",
             "events.outbox", "events.inbox", "events.sqlite")
_SQL = re.compile(r"\b(SELECT\s.+\sFROM|INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\w+\s+SET|"
                  r"DELETE\s+FROM|CREATE\s+(TABLE|INDEX)|ALTER\s+TABLE)\b", re.I | re.S)


def test_sql_lives_only_in_the_stores() -> None:
    """Every SQL statement is in a store module, so a schema change is made in one place."""
    found = []
    for module, path in sorted(ALL.items()):
        if _within(module, SQL_HOMES):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and _SQL.search(node.value):
                found.append(f"{module}:{node.lineno}: {node.value[:60]!r}")
    assert not found, "SQL outside the stores:\n" + "\n".join(found)


def test_no_import_circle() -> None:
    """Strongly connected components over module imports (summit's own Tarjan, which the
    planner uses for recipe cycles): any block of two or more modules is a circle."""
    blocks = strongly_connected(sorted(GRAPH), lambda module: sorted(GRAPH[module]))
    circles = [sorted(block) for block in blocks if len(block) > 1]
    assert not circles, f"import circles: {circles}"


def _code_strings(path: Path) -> set[str]:
    """The string constants of a module's code (parts of f-strings too), docstrings aside."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef
                                | ast.AsyncFunctionDef)
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
            and isinstance(node.value, str) and id(node) not in docstrings}


@pytest.mark.parametrize("module", sorted(m for m in ALL if not m.startswith("daemon.formats")))
def test_one_reader_per_format(module: str) -> None:
    """Only ``daemon.formats`` reads YAML, and only it spells a manifest's file name or where
    a published index is: every other module asks it."""
    imported = _imports(module, ALL[module], KNOWN)
    assert "yaml" not in imported, f"{module} parses YAML itself; use daemon.formats"
    spelled = sorted(s for s in _code_strings(ALL[module])
                     if ".jsonc" in s or "/current" in s or s == "current")
    assert not spelled, f"{module} spells a file format's names itself: {spelled}"


def test_the_build_core_calls_no_backend_plugin() -> None:
    """The build core reaches backends through the registry, never a plugin's own code."""
    plugins = {"daemon.avalanche.noop", "daemon.avalanche.script"}
    assert not GRAPH["daemon.avalanche.build"] & plugins
