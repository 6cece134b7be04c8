"""Git upstreams are fetched only over the network and only at a full commit id."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.avalanche.errors import SourceError
from daemon.avalanche.gitsource import check_url, fetch_commit, resolve_url


@pytest.mark.parametrize("url", ["/srv/git/secret.git", "file:///srv/git/secret.git",
                                 "ssh://host/repo.git", "git://"])
def test_a_host_path_or_another_scheme_is_refused(url: str) -> None:
    with pytest.raises(SourceError, match="only over https://, http://, git://"):
        check_url(url)


def test_a_ref_that_is_not_a_full_commit_id_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"'v1\.2' is not a commit id"):
        fetch_commit(tmp_path, "https://example.invalid/r.git", "v1.2")
    with pytest.raises(SourceError, match="not a commit id"):
        fetch_commit(tmp_path, "https://example.invalid/r.git", "0123abc")


def test_relative_submodule_urls_resolve_against_the_parent() -> None:
    assert resolve_url("git://h:9/x/hello.git", "../sub.git") == "git://h:9/x/sub.git"
    assert resolve_url("https://h/a/b.git", "./c.git") == "https://h/a/b.git/c.git"
    assert resolve_url("https://h/a/b.git", "https://o/c.git") == "https://o/c.git"
