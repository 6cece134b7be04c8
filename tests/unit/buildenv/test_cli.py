"""``cairn buildenv``: push into vessel's state, list and show from it, from a file and from
a cache; errors are one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.cli import main

from .support import make_tree, pack_tree


def test_push_ls_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record, path = pack_tree(make_tree(tmp_path / "tree"), tmp_path / "built", name="clienv")
    state = tmp_path / "vessel"
    assert main(["buildenv", "push", str(path), "--state", str(state)]) == 0
    assert f"stored: clienv sha256:{record.digest}" in capsys.readouterr().out
    assert main(["buildenv", "push", str(path), "--state", str(state)]) == 0
    assert "already stored" in capsys.readouterr().out
    assert main(["buildenv", "ls", "--state", str(state)]) == 0
    out = capsys.readouterr().out
    assert "clienv" in out and record.digest[:16] in out
    assert main(["buildenv", "show", "clienv", "--state", str(state), "--provides"]) == 0
    out = capsys.readouterr().out
    assert f"sha256:{record.digest}" in out and "binary(tool)" in out
    assert "zlib1g 1:1.2.13 [debian]" in out
    assert main(["buildenv", "show", str(path)]) == 0
    assert f"sha256:{record.digest}" in capsys.readouterr().out
    cache = tmp_path / "cache"
    from daemon.buildenv.cache import EnvironmentCache
    EnvironmentCache(cache).add(path, record)
    assert main(["buildenv", "ls", "--cache", str(cache)]) == 0
    assert "clienv" in capsys.readouterr().out


def test_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["buildenv", "push", str(tmp_path / "missing.tar.zst"),
                 "--state", str(tmp_path / "v")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["buildenv", "ls", "--url", "http://127.0.0.1:9"]) == 2
    assert "--url needs --key" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n')
    assert main(["buildenv", "build", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "neither [base] nor [layer]" in capsys.readouterr().err
