"""Ed25519 signatures in the real minisign format.

Why minisign: any user can check a cairn repository with a stock tool
(``minisign -V -p minisign.pub -m index.json``) instead of trusting our own verifier.

Formats (from minisign's source, version 0.11):

* public key file: ``untrusted comment: ...`` then base64 of ``"Ed" || key_id[8] || pk[32]``;
* signature file (prehashed, algorithm ``"ED"``): an untrusted comment line, base64 of
  ``"ED" || key_id[8] || ed25519(BLAKE2b-512(message))``, a ``trusted comment: ...`` line,
  and base64 of the *global* signature ``ed25519(signature || trusted_comment)`` which
  binds the trusted comment to the signature;
* secret key file: minisign's own layout without a password (``kdf_alg`` zero), so
  ``minisign -S -s`` can use it too. It is written with mode 0600 and never served.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from events.errors import CairnError

_PK_ALG = b"Ed"
_SIG_ALG_PREHASHED = b"ED"
_CHK_ALG = b"B2"
_KDF_NONE = b"\x00\x00"
_UNTRUSTED = "untrusted comment: "
_TRUSTED = "trusted comment: "


class SignatureError(CairnError):
    """A key or signature is malformed, or a signature does not verify."""


@dataclass(frozen=True)
class PublicKey:
    key_id: bytes
    key: bytes

    @property
    def key_id_hex(self) -> str:
        """How minisign prints the key id: the 8 bytes as a little-endian number, upper hex."""
        return f"{int.from_bytes(self.key_id, 'little'):016X}"

    def to_file_text(self) -> str:
        body = base64.b64encode(_PK_ALG + self.key_id + self.key).decode()
        return f"{_UNTRUSTED}minisign public key {self.key_id_hex}\n{body}\n"


@dataclass(frozen=True)
class SecretKey:
    key_id: bytes
    seed: bytes

    @property
    def signing_key(self) -> SigningKey:
        return SigningKey(self.seed)

    @property
    def public(self) -> PublicKey:
        return PublicKey(self.key_id, bytes(self.signing_key.verify_key))

    @classmethod
    def generate(cls) -> SecretKey:
        return cls(secrets.token_bytes(8), secrets.token_bytes(32))

    def to_file_text(self) -> str:
        sk64 = self.seed + self.public.key
        chk = hashlib.blake2b(_PK_ALG + self.key_id + sk64, digest_size=32).digest()
        raw = (
            _PK_ALG + _KDF_NONE + _CHK_ALG + bytes(32)  # salt: unused without a password
            + (0).to_bytes(8, "little") + (0).to_bytes(8, "little")
            + self.key_id + sk64 + chk
        )
        return f"{_UNTRUSTED}minisign secret key (unencrypted)\n{base64.b64encode(raw).decode()}\n"

    @classmethod
    def from_file_text(cls, text: str) -> SecretKey:
        raw = _b64_line(text, 1, "secret key")
        if len(raw) != 158 or raw[:2] != _PK_ALG or raw[4:6] != _CHK_ALG:
            raise SignatureError("not a minisign Ed25519 secret key")
        if raw[2:4] != _KDF_NONE:
            raise SignatureError("the minisign secret key is password-protected; cairn needs "
                                 "an unencrypted key (minisign -G -W)")
        key_id, sk64, chk = raw[54:62], raw[62:126], raw[126:158]
        if hashlib.blake2b(_PK_ALG + key_id + sk64, digest_size=32).digest() != chk:
            raise SignatureError("minisign secret key checksum mismatch: the file is damaged")
        key = cls(key_id, sk64[:32])
        if key.public.key != sk64[32:]:
            raise SignatureError("minisign secret key is inconsistent (public half differs)")
        return key


def parse_public_key(text: str) -> PublicKey:
    """A ``minisign.pub`` file, or just its base64 line (as ``minisign -P`` takes it)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise SignatureError("the public key file is empty")
    line = lines[1] if lines[0].startswith(_UNTRUSTED) and len(lines) > 1 else lines[0]
    raw = _decode(line, "public key")
    if len(raw) != 42 or raw[:2] != _PK_ALG:
        raise SignatureError("not a minisign Ed25519 public key")
    return PublicKey(raw[2:10], raw[10:42])


def sign(key: SecretKey, message: bytes, *, trusted_comment: str,
         untrusted_comment: str = "signature from cairn vessel") -> str:
    """The text of a ``.minisig`` file for ``message`` (prehashed, with a global signature)."""
    if "\n" in trusted_comment or "\n" in untrusted_comment:
        raise SignatureError("signature comments must be one line")
    signer = key.signing_key
    signature = signer.sign(hashlib.blake2b(message, digest_size=64).digest()).signature
    global_sig = signer.sign(signature + trusted_comment.encode()).signature
    return (
        f"{_UNTRUSTED}{untrusted_comment}\n"
        f"{base64.b64encode(_SIG_ALG_PREHASHED + key.key_id + signature).decode()}\n"
        f"{_TRUSTED}{trusted_comment}\n"
        f"{base64.b64encode(global_sig).decode()}\n"
    )


def verify(public: PublicKey, message: bytes, signature_text: str) -> str:
    """Check a ``.minisig`` over ``message``; return its trusted comment.

    Raises :class:`SignatureError` naming what failed (format, key id, signature, comment).
    """
    lines = signature_text.splitlines()
    if len(lines) < 4 or not lines[0].startswith(_UNTRUSTED) or not lines[2].startswith(
        _TRUSTED
    ):
        raise SignatureError("not a minisign signature file (expected four lines)")
    raw = _decode(lines[1], "signature")
    if len(raw) != 74 or raw[:2] != _SIG_ALG_PREHASHED:
        raise SignatureError("unsupported signature: cairn expects a prehashed (ED) signature")
    key_id, signature = raw[2:10], raw[10:74]
    if key_id != public.key_id:
        other = PublicKey(key_id, b"").key_id_hex
        raise SignatureError(
            f"signed with key {other}, but the given public key is {public.key_id_hex}"
        )
    trusted = lines[2][len(_TRUSTED):]
    verifier = VerifyKey(public.key)
    try:
        verifier.verify(hashlib.blake2b(message, digest_size=64).digest(), signature)
    except BadSignatureError:
        raise SignatureError("signature verification failed: the data was altered") from None
    try:
        verifier.verify(signature + trusted.encode(), _decode(lines[3], "global signature"))
    except BadSignatureError:
        raise SignatureError("the trusted comment's signature is invalid") from None
    return trusted


def load_or_create_key(path: Path) -> SecretKey:
    """Read the secret key at ``path``, generating it (mode 0600, atomically) the first time."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        key = SecretKey.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key.to_file_text())
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)  # never overwrite a key another process created meanwhile
        except FileExistsError:
            return load_or_create_key(path)
        finally:
            tmp.unlink()
        return key
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise SignatureError(
            f"secret key {path} is readable by others (mode {mode:o}): chmod 600 it"
        )
    return SecretKey.from_file_text(text)


def _b64_line(text: str, index: int, what: str) -> bytes:
    lines = text.splitlines()
    if len(lines) <= index:
        raise SignatureError(f"the {what} file is truncated")
    return _decode(lines[index], what)


def _decode(line: str, what: str) -> bytes:
    try:
        return base64.b64decode(line.strip(), validate=True)
    except ValueError:
        raise SignatureError(f"the {what} is not valid base64") from None
