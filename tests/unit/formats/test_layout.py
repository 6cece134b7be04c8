"""The repository's layout is spelled once: paths, and the trusted comment vessel signs."""

from __future__ import annotations

from daemon.formats import layout


def test_paths() -> None:
    assert layout.index_path("volatile", "x86_64") == "volatile/x86_64/current/index.json"
    assert layout.index_url("http://v:1/", "c", "a") == "http://v:1/c/a/current/index.json"
    assert layout.pool_uri("ab" + "0" * 62) == f"../../../pool/ab/ab{'0' * 62}.tar.zst"


def test_the_trusted_comment_reads_back() -> None:
    comment = layout.trusted_comment("volatile", "x86_64", 7, 1700000000)
    signature = f"untrusted comment: x\nRWQ\ntrusted comment: {comment}\nsig\n"
    assert layout.parse_trusted_comment(signature) == {
        "timestamp": "1700000000", "file": "index.json", "channel": "volatile",
        "arch": "x86_64", "generation": "7"}
    assert layout.parse_trusted_comment("no comment\n") == {}
