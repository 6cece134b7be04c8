"""A recipe whose version YAML would read as a number (``1.10``) builds and publishes under
the text its author wrote, end to end: a real ``cairn up`` (summit, a builder, vessel, the
journal), a real HTTP server for the upstream tarball (checked by its sha256), and the
autotools macros ``%configure``, ``%make`` and ``%make_install`` compiling real C.

A builder once read ``1.10`` as the float 1.1, named the packages ``…-1.1-…`` and vessel
refused the build; the index here must name ``…-1.10-…`` and nothing ``-1.1-``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.index import as_dict, read_index
from tests.unit.avalanche.support import git

pytestmark = [
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed"),
    pytest.mark.skipif(shutil.which("gcc") is None, reason="no C compiler"),
    pytest.mark.timeout(300),
]

TREE = Path(__file__).resolve().parents[2]

#: A hand-written ``configure`` that takes the options ``%configure`` passes (autoconf's
#: names) and remembers the prefix, as a generated one would.
CONFIGURE = """#!/bin/sh
prefix=/usr/local
for arg in "$@"; do
    case "$arg" in
        --prefix=*) prefix="${arg#--prefix=}" ;;
        --*=*) ;;
        *) echo "configure: unknown option $arg" >&2; exit 1 ;;
    esac
done
echo "PREFIX = $prefix" > config.mk
"""
MAKEFILE = """include config.mk
tenten: tenten.c
\t$(CC) $(CFLAGS) -o tenten tenten.c
install: tenten
\tinstall -Dm755 tenten $(DESTDIR)$(PREFIX)/bin/tenten
"""
SOURCE = '#include <stdio.h>\nint main(void) { puts("ten ten"); return 0; }\n'
RECIPE = """name: tenten
version: 1.10
release: 1
summary: A version YAML would read as 1.1
license: MPL-2.0
upstreams:
    - {url} : {sha256}
toolchain: gnu
setup: |
    %configure
build: |
    %make
install: |
    %make_install
"""


def _tarball() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, text, mode in (("configure", CONFIGURE, 0o755), ("Makefile", MAKEFILE, 0o644),
                                 ("tenten.c", SOURCE, 0o644)):
            data = text.encode()
            info = tarfile.TarInfo(f"tenten-1.10/{name}")
            info.size, info.mode, info.mtime = len(data), mode, 1700000000
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The tarball over real HTTP on 127.0.0.1: its URL and sha256."""
    root = tmp_path / "www"
    root.mkdir()
    data = _tarball()
    (root / "tenten-1.10.tar.gz").write_bytes(data)
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/tenten-1.10.tar.gz"
        yield url, hashlib.sha256(data).hexdigest()
    finally:
        server.shutdown()
        server.server_close()


def test_version_1_10_builds_and_publishes_as_1_10(tmp_path: Path,
                                                   served: tuple[str, str]) -> None:
    url, digest = served
    recipes = tmp_path / "recipes"
    (recipes / "tenten").mkdir(parents=True)
    (recipes / "tenten" / "stone.yaml").write_text(RECIPE.format(url=url, sha256=digest))
    git(recipes, "init", "-q", "-b", "main")
    git(recipes, "add", "-A")
    git(recipes, "commit", "-q", "-m", "tenten")
    summary_file = tmp_path / "summary.json"
    done = subprocess.run(
        [sys.executable, "-m", "daemon.cli", "up", "--recipes", str(recipes), "--state",
         str(tmp_path / "state"), "--port", "0", "--builders", "1", "--poll-interval", "0.5",
         "--until-idle", "--summary-json", str(summary_file), "--host"],
        env={**os.environ, "PYTHONPATH": str(TREE)}, cwd=TREE, capture_output=True, text=True,
        timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads(summary_file.read_text())
    index_file = Path(summary["repository"]["path"]) / "volatile/x86_64/current/index.json"
    packages = as_dict(read_index(index_file))["packages"]
    names = {p["name"]: p for p in packages}
    assert "tenten" in names, packages
    assert names["tenten"]["version"] == "1.10"
    assert names["tenten"]["provides"] and "binary(tenten)" in names["tenten"]["provides"]
    exported = subprocess.run(
        [sys.executable, "-m", "daemon.cli", "events", "export", "--journal",
         str(tmp_path / "state" / "journal.sqlite"), "--type", "build-done"],
        cwd=TREE, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    filenames = [a["filename"] for line in exported.stdout.splitlines()
                 for a in json.loads(line)["data"]["artefacts"]]  # fmt: skip
    assert filenames and all("-1.10-" in f and "-1.1-" not in f for f in filenames), filenames
    pool = Path(summary["repository"]["path"]) / names["tenten"]["uri"].removeprefix("../../../")
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    subprocess.run(["tar", "--zstd", "-xf", str(pool), "-C", str(unpacked)], check=True)
    ran = subprocess.run([str(unpacked / "usr/bin/tenten")], capture_output=True, text=True,
                         check=True)  # fmt: skip
    assert ran.stdout == "ten ten\n"
