"""cairn works from a wheel, not only from the checkout: the schemas, the example recipes and
the dashboard's templates ship inside it."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

PROBE = """
import json, sys
import schemas, examples, daemon.summit.web.dashboard as dashboard
from daemon.cli import build_parser
commands = sorted(build_parser()._subparsers._group_actions[0].choices)
print(json.dumps({"schemas": schemas.names(), "schemas_file": schemas.__file__,
                  "greet": examples.recipes().joinpath("greet", "stone.yaml").is_file(),
                  "dashboard_file": dashboard.__file__, "commands": commands}))
"""


def test_wheel_carries_schemas_examples_and_templates(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    str(ROOT), "-w", str(tmp_path)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("cairn-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "schemas/build-done.v1.json" in names and "schemas/envelope.v1.json" in names
    assert "examples/recipes/greet/stone.yaml" in names
    assert "daemon/summit/web/templates/overview.html" in names
    assert "daemon/summit/web/static/live.js" in names
    assert not [n for n in names if n.startswith("tests/")]

    target = tmp_path / "installed"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(target), str(wheel)], check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(target)}
    probe = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, env=env,
                           capture_output=True, text=True, check=True)
    import json

    found = json.loads(probe.stdout)
    assert found["schemas_file"].startswith(str(target))
    assert found["dashboard_file"].startswith(str(target))
    shipped = {path.name for path in (Path(__file__).parents[2] / "schemas").glob("*.json")}
    assert set(found["schemas"]) == shipped and found["greet"]
    assert {"up", "summit", "avalanche", "vessel", "journal", "events", "plan"} <= set(
        found["commands"])
