"""The host's apt sources, read so that a Debian base uses the mirror the host already uses.

Reads ``/etc/apt/sources.list`` and ``/etc/apt/sources.list.d/*.list`` (one-line format:
``deb [opt=val ...] URI SUITE COMPONENT...``) and ``*.sources`` (deb822 stanzas with
``Types``, ``URIs``, ``Suites``, ``Components``, ``Signed-By``, ``Enabled``). Other files in
the directory (``*.disabled``, ``*.save``) are ignored, as apt ignores them. Only ``deb``
entries count (``deb-src`` is for sources).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import BuildEnvError

ETC_APT = Path("/etc/apt")


@dataclass(frozen=True)
class Source:
    uri: str
    suite: str
    components: tuple[str, ...]
    signed_by: str | None = None

    def line(self, components: Sequence[str] | None = None) -> str:
        """The one-line form mmdebstrap takes as a mirror argument."""
        opts = f"[signed-by={self.signed_by}] " if self.signed_by else ""
        return f"deb {opts}{self.uri} {self.suite} {' '.join(components or self.components)}"


def read_host_sources(etc_apt: Path = ETC_APT) -> list[Source]:
    """Every enabled ``deb`` source of the host, in apt's reading order."""
    files = [etc_apt / "sources.list"]
    parts = etc_apt / "sources.list.d"
    if parts.is_dir():
        files += sorted(p for p in parts.iterdir() if p.suffix in (".list", ".sources"))
    found: list[Source] = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError) as exc:
            raise BuildEnvError(f"cannot read apt sources {path}: {exc}") from exc
        found += parse_deb822(text) if path.suffix == ".sources" else parse_one_line(text)
    return found


def parse_one_line(text: str) -> list[Source]:
    found: list[Source] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line.startswith("deb ") and not line.startswith("deb\t"):
            continue
        words = line.split()[1:]
        options: dict[str, str] = {}
        if words and words[0].startswith("["):
            opts: list[str] = []
            while words:
                word = words.pop(0)
                opts.append(word)
                if word.endswith("]"):
                    break
            for opt in " ".join(opts).strip("[]").split():
                key, _, value = opt.partition("=")
                options[key.lower()] = value
        if len(words) < 2:
            continue
        found.append(Source(words[0], words[1], tuple(words[2:]), options.get("signed-by")))
    return found


def parse_deb822(text: str) -> list[Source]:
    found: list[Source] = []
    for stanza in _stanzas(text):
        if stanza.get("enabled", "yes").lower() == "no":
            continue
        if "deb" not in stanza.get("types", "").split():
            continue
        signed = stanza.get("signed-by") or None
        if signed is not None and "\n" in signed.strip():
            signed = None  # an inline key: mmdebstrap finds the keyring itself
        for uri in stanza.get("uris", "").split():
            for suite in stanza.get("suites", "").split():
                found.append(Source(uri, suite, tuple(stanza.get("components", "").split()),
                                    signed.strip() if signed else None))
    return found


def _stanzas(text: str) -> list[dict[str, str]]:
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key: str | None = None
    for raw in [*text.splitlines(), ""]:
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if current:
                stanzas.append(current)
            current, key = {}, None
        elif raw[0] in " \t" and key is not None:
            current[key] += "\n" + raw.strip()
        elif ":" in raw:
            name, _, value = raw.partition(":")
            key = name.strip().lower()
            current[key] = value.strip()
    return stanzas


def mirror_lines(sources: Sequence[Source], suites: Sequence[str],
                 components: Sequence[str], *, where: str) -> list[str]:
    """mmdebstrap mirror lines for ``suites`` from ``sources``; every suite must be found."""
    lines: list[str] = []
    for suite in suites:
        matching = [s for s in sources if s.suite == suite]
        if not matching:
            known = sorted({s.suite for s in sources}) or ["none"]
            raise BuildEnvError(
                f"no apt source for suite {suite!r} in {where} (suites there: "
                f"{', '.join(known)}); add one, or set base.mirror in the declaration")
        for source in matching:
            line = source.line(components or None)
            if line not in lines:
                lines.append(line)
    return lines
