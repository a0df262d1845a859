"""OpenPGP public keys as Vault's `pgp_keys` wants them: base64 of the binary (unarmored) key packets."""
from __future__ import annotations

import base64
import binascii
from pathlib import Path

from installer.errors import VaultError

_BEGIN = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
_END = "-----END PGP PUBLIC KEY BLOCK-----"


def dearmor(text: str, where: str) -> bytes:
    """The key packets inside an ASCII-armored block (RFC 4880 §6.2); the CRC line is left out."""
    lines = [ln.strip() for ln in text.strip().splitlines()]
    try:
        start, end = lines.index(_BEGIN), lines.index(_END)
    except ValueError:
        raise VaultError(f"{where}: not an OpenPGP public key (no '{_BEGIN}' block)") from None
    body = lines[start + 1:end]
    # Armor headers ("Comment: ...") end at the first blank line, when there are any.
    if "" in body:
        body = body[body.index("") + 1:]
    data = "".join(ln for ln in body if ln and not ln.startswith("="))
    try:
        return base64.b64decode(data, validate=True)
    except binascii.Error:
        raise VaultError(f"{where}: the armored OpenPGP key is not valid base64") from None


def read_public_key(path: Path) -> str:
    """base64 of the binary public key in `path` (armored or binary, as `gpg --export [--armor]` writes)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise VaultError(f"{path}: cannot read OpenPGP public key: {e.strerror}") from None
    if raw.lstrip().startswith(b"-----BEGIN"):
        packets = dearmor(raw.decode("ascii", "replace"), str(path))
    else:
        packets = raw
    # A public key starts with a Public-Key packet (tag 6): old format 0x98/0x99, new format 0xC6.
    if not packets or packets[0] not in (0x98, 0x99, 0x9A, 0xC6):
        raise VaultError(f"{path}: not an OpenPGP public key (first packet is not a public key)")
    return base64.b64encode(packets).decode()
