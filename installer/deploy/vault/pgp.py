"""OpenPGP public keys as Vault's `pgp_keys` wants them: base64 of the binary (unarmored) key packets."""
from __future__ import annotations

import base64
import binascii
from pathlib import Path

from installer.core.errors import VaultError

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


def _first_packet_body(packets: bytes) -> bytes:
    """Body of the first OpenPGP packet (RFC 4880 §4.2: old- and new-format headers)."""
    tag = packets[0]
    if tag & 0x40:  # new format
        first = packets[1]
        if first < 192:
            return packets[2:2 + first]
        if first < 224:
            n = ((first - 192) << 8) + packets[2] + 192
            return packets[3:3 + n]
        if first == 255:
            n = int.from_bytes(packets[2:6], "big")
            return packets[6:6 + n]
        raise VaultError("OpenPGP key uses a partial-length header for its primary key packet")
    size = {0: 1, 1: 2, 2: 4}.get(tag & 0x03)
    if size is None:
        raise VaultError("OpenPGP key packet has an indeterminate length")
    n = int.from_bytes(packets[1:1 + size], "big")
    return packets[1 + size:1 + size + n]


def fingerprint(b64key: str) -> str:
    """The primary key's v4 fingerprint, as `gpg --fingerprint` shows it (so each operator can check it)."""
    import hashlib

    body = _first_packet_body(base64.b64decode(b64key))
    if not body or body[0] != 4:
        raise VaultError(f"OpenPGP key version {body[0] if body else '?'} (only v4 keys are supported)")
    return hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body).hexdigest().upper()
