"""minisign format: our signatures verify with the real minisign binary and vice versa."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from daemon.vessel import minisign

MINISIGN = shutil.which("minisign")
needs_minisign = pytest.mark.skipif(MINISIGN is None, reason="the minisign binary is not installed")


def _keyfiles(tmp_path: Path) -> tuple[minisign.SecretKey, Path]:
    key = minisign.load_or_create_key(tmp_path / "minisign.key")
    pub = tmp_path / "minisign.pub"
    pub.write_text(key.public.to_file_text())
    return key, pub


def test_key_is_created_private_and_reloaded(tmp_path: Path) -> None:
    key = minisign.load_or_create_key(tmp_path / "k" / "minisign.key")
    mode = stat.S_IMODE((tmp_path / "k" / "minisign.key").stat().st_mode)
    assert mode == 0o600
    again = minisign.load_or_create_key(tmp_path / "k" / "minisign.key")
    assert again == key


def test_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "minisign.key"
    minisign.load_or_create_key(path)
    path.chmod(0o644)
    with pytest.raises(minisign.SignatureError, match="chmod 600"):
        minisign.load_or_create_key(path)


def test_python_round_trip_and_tamper(tmp_path: Path) -> None:
    key, pub = _keyfiles(tmp_path)
    message = b'{"packages":[]}'
    sig = minisign.sign(key, message, trusted_comment="generation:1")
    public = minisign.parse_public_key(pub.read_text())
    assert minisign.verify(public, message, sig) == "generation:1"
    with pytest.raises(minisign.SignatureError, match="altered"):
        minisign.verify(public, message.replace(b"[", b"{"), sig)
    forged = sig.replace("generation:1", "generation:2")
    with pytest.raises(minisign.SignatureError, match="trusted comment"):
        minisign.verify(public, message, forged)
    other = minisign.SecretKey.generate().public
    with pytest.raises(minisign.SignatureError, match="signed with key"):
        minisign.verify(other, message, sig)


@needs_minisign
def test_real_minisign_verifies_our_signature(tmp_path: Path) -> None:
    key, pub = _keyfiles(tmp_path)
    data = tmp_path / "index.json"
    data.write_bytes(b"hello " * 1000)
    (tmp_path / "index.json.minisig").write_text(
        minisign.sign(key, data.read_bytes(), trusted_comment="cairn test"))
    ok = subprocess.run([str(MINISIGN), "-V", "-p", str(pub), "-m", str(data)],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "Trusted comment: cairn test" in ok.stdout
    data.write_bytes(b"hello " * 999 + b"hellO ")
    bad = subprocess.run([str(MINISIGN), "-V", "-p", str(pub), "-m", str(data)],
                         capture_output=True, text=True)
    assert bad.returncode != 0


@needs_minisign
def test_real_minisign_signs_with_our_secret_key(tmp_path: Path) -> None:
    key, _pub = _keyfiles(tmp_path)
    data = tmp_path / "m"
    data.write_bytes(b"payload")
    done = subprocess.run([str(MINISIGN), "-S", "-s", str(tmp_path / "minisign.key"), "-m",
                           str(data), "-t", "from the binary"], capture_output=True,
                          stdin=subprocess.DEVNULL, text=True)
    assert done.returncode == 0, done.stderr
    sig = (tmp_path / "m.minisig").read_text()
    assert minisign.verify(key.public, b"payload", sig) == "from the binary"
