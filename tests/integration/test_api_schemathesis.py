"""``schemathesis`` against ``/api/v1/openapi.json`` of a running summit (a real
``cairn up`` that has built and published two tasks): no server error, and every answer
conforms to the document (status codes, content types, response schemas).

The two server-sent event streams are left out: they never end, which a request/response
fuzzer cannot read; ``test_api_rest`` and the browser test exercise them. So is pointing a
repository at another build environment, which rebuilds everything each time it is accepted
(``test_api_rest`` calls it)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.cairn_up import make_recipes, running_farm

pytestmark = [pytest.mark.slow]


def schemathesis() -> list[str]:
    beside = Path(sys.executable).parent / "schemathesis"
    found = str(beside) if beside.exists() else shutil.which("schemathesis")
    if found is None:
        pytest.skip("schemathesis is not installed (pip install -e '.[test]')")
    return [found]


# Thirty operations fuzzed in every phase take over a minute on a loaded CI machine.
@pytest.mark.timeout(300)
def test_schemathesis_finds_no_server_error(tmp_path: Path) -> None:
    command = schemathesis()
    with running_farm(tmp_path, make_recipes(tmp_path, lines=2, pause=0.1)) as farm:
        farm.wait_for("both tasks completed", lambda: farm.get("/api/v1/overview")[
            "counts"]["completed"] == 2)
        done = subprocess.run(
            [*command, "run", farm.url + "/api/v1/openapi.json",
             # Bounded: 50 examples per operation and phase, a fixed seed (reproducible).
             "--max-examples", "50", "--seed", "7", "--generation-database", "none",
             # Each accepted environment change rebuilds every package: fifty of them test
             # the farm, not the API (test_api_rest calls it).
             "--exclude-path-regex", "stream$|/environment$", "--request-timeout", "10",
             # With the token the changing calls are fuzzed for real (404, 409, 201...).
             "--header", f"Authorization: Bearer {farm.token()}"],
            cwd=tmp_path, capture_output=True, text=True, timeout=200, check=False)
    report = done.stdout + done.stderr
    print(report[-3000:])
    assert done.returncode == 0, report[-6000:]
    assert "passed" in report and "failed" not in report.lower().split("summary")[-1]
