"""cosign's tag scheme: an image's signature, attestation and SBOM live beside it as ``sha256-<hex>.sig``
(``.att``, ``.sbom``) in the same repository."""
from __future__ import annotations

from installer.core.hashing import digest_hex

SIGNATURE_SUFFIXES = (".sig", ".att", ".sbom")


def signature_tag(digest: str, suffix: str = ".sig") -> str:
    """'sha256:abc…' -> 'sha256-abc….sig'."""
    return f"sha256-{digest_hex(digest)}{suffix}"


def is_signature_tag(tag: str) -> bool:
    return tag.startswith("sha256-") and tag.endswith(SIGNATURE_SUFFIXES)


def tags_digest(tag: str, digest: str) -> bool:
    """True when a cosign tag (any suffix) belongs to the image with this digest."""
    return tag.startswith(f"sha256-{digest_hex(digest)}.")
