"""The one check of index.json.sig: every command that trusts a bundle index calls `index_signature_problem`.

The signature file is what `cosign sign-blob` prints and `medai bundle build` writes: standard base64 (one line,
optional trailing newline) of a DER ECDSA-SHA256 signature over the exact bytes of index.json. Nothing else is
accepted (raw DER bytes, other encodings): two readers that disagree about the format are two trust decisions.
"""
from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from installer.core.errors import TrustError
from installer.core.safe_read import read_regular_file
from installer.trust.keys import fingerprint, verify_signature

MAX_SIG_FILE = 4096  # a base64 DER ECDSA P-256 signature is under 100 bytes


def read_signature_file(path: str | os.PathLike) -> bytes | None:
    """The signature file's bytes (a regular file, not a symlink, small); None when absent."""
    return read_regular_file(path, MAX_SIG_FILE, TrustError, "not a signature")


def decode_signature(sig_file: bytes) -> bytes | None:
    try:
        return base64.b64decode(sig_file.strip(), validate=True)
    except (ValueError, binascii.Error):
        return None


def index_signature_problem(pub, index_bytes: bytes, sig_file: bytes | None, sig_name: str = "index.json.sig") -> str | None:
    """None when `sig_file` (the bytes of index.json.sig) verifies over `index_bytes` with `pub`, else the problem."""
    if sig_file is None:
        return f"{sig_name}: missing: index.json is not signed, nothing proves who built this bundle"
    sig = decode_signature(sig_file)
    if sig is None:
        return f"{sig_name}: not base64"
    if not verify_signature(pub, sig, index_bytes):
        return (f"index.json: signature in {sig_name} does not verify with key {fingerprint(pub)} "
                "(index edited or replaced, or the wrong key)")
    return None


def require_index_signature(pub, index_bytes: bytes, sig_path: str | os.PathLike) -> None:
    """Raise TrustError unless the signature file at `sig_path` verifies over `index_bytes`."""
    problem = index_signature_problem(pub, index_bytes, read_signature_file(sig_path), Path(sig_path).name)
    if problem:
        raise TrustError(f"{Path(sig_path).parent}: {problem}")
