"""Downloads checked against their sha256 and cached by it.

A file is fetched once per builder: the cache is keyed by the expected hash, so a source or
package already seen is never downloaded again, and two recipes naming the same tarball share
it. A download is written to a temporary file and renamed into the cache only after its hash
matched, so the cache never holds a wrong file.

Blocking (urllib): called from the build thread.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from events.payloads import Outcome

from .errors import BuildError

_CHUNK = 1 << 16


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def is_remote(url: str) -> bool:
    return url.split(":", 1)[0].lower() in ("http", "https")


def local_path(url: str) -> Path | None:
    """The file a ``file://`` URL or plain path names; ``None`` for a remote URL."""
    if is_remote(url):
        return None
    if url.startswith("file://"):
        return Path(urllib.parse.unquote(urllib.parse.urlparse(url).path))
    return Path(url)


def _copy_stream(url: str, dest: Path, timeout: float, error: type[BuildError]) -> None:
    path = local_path(url)
    try:
        if path is not None:
            shutil.copyfile(path, dest)
            return
        # Only http(s) reaches urllib: local_path() handled file:// and paths above.
        request = urllib.request.Request(url, headers={"User-Agent": "cairn-avalanche"})  # noqa: S310
        with urllib.request.urlopen(request, timeout=timeout) as response, dest.open("wb") as out:  # noqa: S310
            shutil.copyfileobj(response, out, _CHUNK)
    except FileNotFoundError as exc:
        raise error(f"{url} does not exist", outcome=Outcome.FAILED) from exc
    except urllib.error.HTTPError as exc:
        outcome = Outcome.FAILED if exc.code in (403, 404, 410) else Outcome.INFRASTRUCTURE
        message = f"cannot download {url}: HTTP {exc.code} {exc.reason}"
        raise error(message, outcome=outcome) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise error(f"cannot download {url}: {exc}", outcome=Outcome.INFRASTRUCTURE) from exc


def fetch_verified(
    url: str, sha256: str, cache_dir: Path, *, timeout: float, error: type[BuildError],
    disclose: bool = False,
) -> tuple[Path, bool]:
    """Return the cached file for ``sha256``, downloading ``url`` if needed.

    The second item says whether it was already cached. A hash mismatch raises ``error``
    (outcome ``failed``) naming the URL and the expected hash; the actual hash only with
    ``disclose`` (a file the recipe itself provides). A reason is shown to anyone: the hash
    of something else the builder can read or reach would be an oracle for its content.
    """
    cached = cache_dir / sha256
    if cached.is_file():
        return cached, True
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=cache_dir, prefix=".part-")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _copy_stream(url, tmp, timeout, error)
        actual = sha256_file(tmp)
        if actual != sha256:
            got = f"got {actual}" if disclose else "got a file with another hash"
            raise error(
                f"sha256 mismatch for {url}: expected {sha256}, {got}; if the file changed "
                "on purpose, check it and put its sha256 in the recipe",
                outcome=Outcome.FAILED,
            )
        os.replace(tmp, cached)
    finally:
        tmp.unlink(missing_ok=True)
    return cached, False
