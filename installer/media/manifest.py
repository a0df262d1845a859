"""The media manifest: how a verified bundle is laid out on one or more sticks, signed with the site key.

Each volume holds VOLUME/medai-bundle/ with index.json, index.json.sig (verbatim), media.json and media.json.sig:

    {"apiVersion": "medai/v1", "kind": "MediaManifest",
     "index": {"sha256", "name", "version"},            # the bundle this media carries
     "volume": N, "volumes": M, "label": "N of M",
     "layout": {"maxPartSize", "volumeSize", "volumes",  # identical on every volume (layoutSha256)
                "files": [{"path", "size", "sha256", "parts": [{"name", "volume", "offset", "size"}]}]},
     "layoutSha256": "...",
     "parts": {NAME: {"size", "sha256"}}}                # the parts on THIS volume, each with its own digest

media.json.sig is base64 of an ECDSA-SHA256 signature over the exact bytes of media.json (as cosign sign-blob
writes it, like index.json.sig). A reader trusts no part whose manifest does not verify with the site key.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from pathlib import Path

from installer.core.errors import BundleError, TrustError
from installer.core.safe_read import read_regular_file
from installer.trust.keys import SigningKey, fingerprint, verify_signature

VOLUME_DIR = "medai-bundle"
MEDIA = "media.json"
MEDIA_SIG = "media.json.sig"
INDEX_FILES = ("index.json", "index.json.sig", "index.sigstore.json")
CONTROL_FILES = {MEDIA, MEDIA_SIG, *INDEX_FILES}
MAX_MANIFEST = 64 * 1024 * 1024


def dumps(doc: dict) -> bytes:
    return (json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n").encode()


def layout_sha256(layout: dict) -> str:
    return hashlib.sha256(dumps(layout)).hexdigest()


def volume_root(path: str | os.PathLike) -> Path:
    """A mount point or its medai-bundle directory -> the directory holding media.json."""
    p = Path(path)
    if (p / MEDIA).is_file() or p.name == VOLUME_DIR:
        return p
    return p / VOLUME_DIR


def is_media(path: str | os.PathLike) -> bool:
    return (volume_root(path) / MEDIA).is_file()


def sign_manifest(doc: dict, key: SigningKey) -> tuple[bytes, bytes]:
    data = dumps(doc)
    return data, base64.b64encode(key.sign(data)) + b"\n"


def _read_regular(path: Path, limit: int) -> bytes:
    data = read_regular_file(path, limit, BundleError)  # no symlink followed, read through the checked descriptor
    if data is None:
        raise BundleError(f"{path}: missing")
    return data


def load_manifest(root: Path, pub) -> dict:
    """Read and verify one volume's media.json; nothing in it is used unless the signature verifies."""
    if pub is None:
        raise TrustError(f"{root}: media are read only with the site public key (--key): no part is trusted without it")
    data = _read_regular(root / MEDIA, MAX_MANIFEST)
    try:
        sig = base64.b64decode(_read_regular(root / MEDIA_SIG, 4096).strip(), validate=True)
    except (ValueError, binascii.Error):
        raise TrustError(f"{root / MEDIA_SIG}: not base64") from None
    if not verify_signature(pub, sig, data):
        raise TrustError(f"{root / MEDIA}: signature does not verify with key {fingerprint(pub)}: "
                         "no part on this volume is trusted")
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise BundleError(f"{root / MEDIA}: not valid JSON: {e}") from None
    if doc.get("kind") != "MediaManifest" or not isinstance(doc.get("layout"), dict):
        raise BundleError(f"{root / MEDIA}: not a medai media manifest")
    if layout_sha256(doc["layout"]) != doc.get("layoutSha256"):
        raise BundleError(f"{root / MEDIA}: layoutSha256 does not match its layout")
    return doc
