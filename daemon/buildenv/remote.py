"""Reading environments from vessel over HTTP (or a ``file://`` URL / path): the signed
listing, signed records, and archives checked against their record while they stream in."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from daemon.avalanche.fetch import local_path
from daemon.vessel import minisign

from .errors import BuildEnvError
from .manifest import (
    LISTING,
    SIGNATURE_SUFFIX,
    EnvListing,
    EnvRecord,
    decode_listing,
    decode_record,
    env_url,
    record_name,
)

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Origin:
    """Where environments are pulled from: vessel's base URL and its public key."""

    url: str
    key: minisign.PublicKey
    timeout: float = 60.0


def origin_with_key_file(url: str, key: Path, timeout: float = 60.0) -> Origin:
    """vessel at ``url``, trusted with the minisign public key in the file ``key``."""
    try:
        public = minisign.parse_public_key(key.read_text())
    except OSError as exc:
        raise BuildEnvError(f"cannot read vessel's public key {key}: {exc}") from exc
    except minisign.SignatureError as exc:
        raise BuildEnvError(f"{key} is not a minisign public key: {exc}") from exc
    return Origin(url, public, timeout)


def fetch_record(origin: Origin, digest: str) -> EnvRecord:
    """The record of ``digest`` from vessel, its signature checked."""
    url = env_url(origin.url, record_name(digest))
    raw = get(url, origin.timeout)
    signature = get(url + SIGNATURE_SUFFIX, origin.timeout).decode("utf-8", "replace")
    try:
        minisign.verify(origin.key, raw, signature)
    except minisign.SignatureError as exc:
        raise BuildEnvError(f"environment record {url} does not verify with vessel's key: "
                            f"{exc}") from exc
    record = decode_record(raw, what=url)
    if record.digest != digest:
        raise BuildEnvError(f"{url} describes sha256:{record.digest}, not sha256:{digest}")
    return record


def get(url: str, timeout: float) -> bytes:
    try:
        path = local_path(url)
        if path is not None:
            return path.read_bytes()
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310  (http(s) only)
            data: bytes = response.read()
            return data
    except urllib.error.HTTPError as exc:
        raise BuildEnvError(f"cannot fetch {url}: HTTP {exc.code} {exc.reason}") from exc
    except OSError as exc:
        raise BuildEnvError(f"cannot fetch {url}: {exc}") from exc


def download(url: str, dest: Path, record: EnvRecord, timeout: float) -> None:
    """Stream ``url`` to ``dest``, stopping as soon as it exceeds the record's size."""
    digest = hashlib.sha256()
    size = 0
    try:
        path = local_path(url)
        source = (path.open("rb") if path is not None
                  else urllib.request.urlopen(url, timeout=timeout))  # noqa: S310  (http(s) only)
        with source as stream, dest.open("wb") as out:
            while chunk := stream.read(_CHUNK):
                size += len(chunk)
                if size > record.size:
                    raise BuildEnvError(f"{url} is larger than the {record.size} bytes its "
                                        "signed record says")
                digest.update(chunk)
                out.write(chunk)
    except urllib.error.HTTPError as exc:
        raise BuildEnvError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from exc
    except OSError as exc:
        raise BuildEnvError(f"cannot download {url}: {exc}") from exc
    check_size_digest(url, size, digest.hexdigest(), record)


def fetch_listing(origin: Origin) -> EnvListing:
    """vessel's listing of environments, its signature checked (retried once: the listing
    and its signature are replaced one after the other)."""
    url = env_url(origin.url, LISTING)
    for attempt in (1, 2):
        raw = get(url, origin.timeout)
        signature = get(url + SIGNATURE_SUFFIX, origin.timeout).decode("utf-8", "replace")
        try:
            minisign.verify(origin.key, raw, signature)
            break
        except minisign.SignatureError as exc:
            if attempt == 2:
                raise BuildEnvError(f"{url} does not verify with vessel's key: {exc}") from exc
    return decode_listing(raw, what=url)


def check_size_digest(what: str, size: int, actual: str, record: EnvRecord) -> None:
    if size != record.size:
        raise BuildEnvError(f"{what} is {size} bytes; its record says {record.size}")
    if actual != record.digest:
        raise BuildEnvError(f"{what} has sha256 {actual}, expected {record.digest}: "
                            "the archive was altered or damaged")


