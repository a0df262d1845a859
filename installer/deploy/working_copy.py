"""The bundle an install runs from: a private, root-owned copy on local disk, checked while it is copied.

    1. index.json is read once (no symlink, bounded size); those exact bytes are what everything else uses;
    2. index.json.sig is checked over those bytes with the site key (installer.trust.index_signature); without a
       key the install is refused unless the operator said --insecure-skip-signature;
    3. every file the verified index lists is streamed from the stick into STATE/bundles/<index digest>/ through
       one sha256 (installer.bundle.private_copy.copy_verified): a file swapped after the check cannot land;
    4. image signatures are checked on the copy, and the plan is built from the verified bytes.

The source is a bundle directory or USB media written by `medai bundle export` (one or more volumes): on media
the files come through installer.media.reader.MediaSource, each split file streamed part after part
(every part checked against the signed media manifest) into the one hash of step 3, so a file exists once, on
local disk, and the stick is only read. Media need the site key: no part is trusted without it.

Nothing after this reads the stick again: the OS repository, the SCAP datastream, the platform images,
tools/ansible and tools/collections all come from the copy.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from installer.bundle.artifacts import BundleIndex
from installer.bundle.layout import INDEX, INDEX_SIG, MAX_INDEX, parse_index_bytes
from installer.bundle.private_copy import CopyResult, copy_verified, directory_opener, remove_unlisted, safe_relpath
from installer.core import statelock
from installer.core.atomic import atomic_write_bytes
from installer.core.errors import BundleError, TrustError
from installer.core.hashing import is_sha256_hex
from installer.core.resources import check_state_dir, state_dir
from installer.core.safe_read import read_regular_file
from installer.media.manifest import is_media, volume_root
from installer.media.reader import MediaSource
from installer.trust.index_signature import index_signature_problem
from installer.trust.keys import fingerprint, load_public_key
from installer.trust.verify import image_signature_problems

SKIP_FLAG = "--insecure-skip-signature"
NOT_CHECKED_BANNER = ("SIGNATURES NOT CHECKED: " + SKIP_FLAG + " was given; nothing proves who built this bundle "
                      "or that the stick was not rewritten")


@dataclass
class VerifiedBundle:
    source: Path           # the bundle on the stick (read once, never again)
    root: Path             # the private copy everything after reads
    index_bytes: bytes
    index: BundleIndex
    signature: str         # "verified" | "NOT CHECKED"
    key: str | None = None
    key_fingerprint: str | None = None
    copy: CopyResult | None = None
    repaired: list[str] = field(default_factory=list)           # media: parts rebuilt from the recovery data
    recovery_not_used: list[str] = field(default_factory=list)  # media: recovery files set aside, with why

    @property
    def index_sha256(self) -> str:
        return hashlib.sha256(self.index_bytes).hexdigest()

    def record(self) -> dict:
        """What the run record keeps about the bundle's trust."""
        return {"source": str(self.source), "workingCopy": str(self.root), "indexSha256": self.index_sha256,
                "signature": self.signature, "key": self.key, "keyFingerprint": self.key_fingerprint,
                **({"warning": NOT_CHECKED_BANNER} if self.signature != "verified" else {})}


def read_member_once(root: Path, name: str, limit: int) -> bytes | None:
    """A top-level bundle file's bytes: regular, not a symlink, at most `limit` bytes; None when absent."""
    return read_regular_file(root / name, limit, BundleError)


def parse_index(data: bytes, where: Path) -> BundleIndex:
    """The verified index bytes as a BundleIndex; every listed path, size and digest checked for shape."""
    doc = parse_index_bytes(data, where)
    seen = set()
    for e in doc["files"]:
        if not isinstance(e, dict) or not isinstance(e.get("path"), str):
            raise BundleError(f"{where}: files[]: an entry without a path")
        rel = safe_relpath(e["path"], f"{where}: files[]")
        if rel in (INDEX, INDEX_SIG) or rel in seen:
            raise BundleError(f"{where}: files[]: {rel!r} listed twice or shadows the index: refused")
        seen.add(rel)
        if not isinstance(e.get("size"), int) or isinstance(e.get("size"), bool) or e["size"] < 0:
            raise BundleError(f"{where}: files[] {rel}: size is not a non-negative integer")
        if not isinstance(e.get("sha256"), str) or not is_sha256_hex(e["sha256"]):
            raise BundleError(f"{where}: files[] {rel}: sha256 is not 64 hex digits")
    return doc


def _private_root(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    if os.geteuid() == 0:
        os.chown(path, 0, 0)
    return path


def verified_working_copy(source: Path, key: Path | None, skip_signature: bool = False, state: Path | None = None,
                          progress: Callable[[int], None] | None = None,
                          volumes: list[Path] | None = None) -> VerifiedBundle:
    """Steps 1-4 of the module doc: the one way every control-host flow (install, upgrade, rollback, verify, push,
    Harbor seeding) opens a bundle. Raises a one-line MedaiError naming the file on any doubt. ``state``: the
    state directory (default: medai's); ``volumes``: the further volumes' mount points when ``source`` is media
    spanning several sticks."""

    source = Path(source).absolute()
    media = is_media(source)
    if media:
        source = volume_root(source)
    if key is None and not skip_signature:
        raise TrustError(f"{source}: no --key: refusing to install a bundle whose signature is not checked "
                         f"(pass the site public key, or {SKIP_FLAG} to accept an unsigned bundle knowingly)")
    if not source.is_dir():
        raise BundleError(f"{source}: bundle directory not found")
    data = read_member_once(source, INDEX, MAX_INDEX)
    if data is None:
        raise BundleError(f"{source / INDEX}: missing: not a finished bundle (an interrupted or failed build leaves no index)")
    sig_file = read_member_once(source, INDEX_SIG, 4096)
    fpr = pub = None
    if media and key is None:
        raise TrustError(f"{source}: USB media are read only with the site public key (--key): no part is trusted without it")
    if key is not None:
        if not Path(key).is_file():
            raise TrustError(f"{key}: public key not found")
        pub = load_public_key(key)
        fpr = fingerprint(pub)
        if sig_file is None:
            raise TrustError(f"{source}: bundle is unsigned (no {INDEX_SIG}) but --key was given: refused")
        problem = index_signature_problem(pub, data, sig_file, INDEX_SIG)
        if problem:
            raise TrustError(f"{source}: bundle refused: {problem}")
    index = parse_index(data, source / INDEX)  # parsed only after the signature over these bytes verified

    digest = hashlib.sha256(data).hexdigest()

    state = state or state_dir()
    check_state_dir(state, source)  # never on the stick, never someone else's
    statelock.hold(state)  # one writer of the working copies at a time
    try:
        root = _private_root(_private_root(state / "bundles") / digest[:32])
        # exactly the files the signed index lists: anything else already there (planted, or left over) goes first
        remove_unlisted(root, [e["path"] for e in index["files"]], keep=(INDEX, INDEX_SIG))
        # on media a damaged part is rebuilt from the stick's recovery data here, in the state directory (0700)
        media_src = MediaSource([source, *(volumes or [])], data, pub, scratch=state / "repair") if media else None
        try:
            result = copy_verified(media_src.open if media_src else directory_opener(source), index["files"], root,
                                   progress=progress)
        except BundleError as e:
            raise BundleError(f"{source}: bundle refused: {e}") from None
        finally:
            if media_src is not None:
                media_src.cleanup()
        atomic_write_bytes(root / INDEX, data, mode=0o600)
        if sig_file is not None:
            atomic_write_bytes(root / INDEX_SIG, sig_file, mode=0o600)
    finally:
        statelock.release(state)
    vb = VerifiedBundle(source, root, data, index, "verified" if key is not None else "NOT CHECKED",
                        str(key) if key is not None else None, fpr, result,
                        media_src.repaired_names() if media_src else [], media_src.recovery_not_used() if media_src else [])
    if key is not None:
        problems = image_signature_problems(root, index, pub)
        if problems:
            shown = "; ".join(problems[:5]) + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else "")
            raise TrustError(f"{source}: bundle refused: {shown}")
    return vb


def print_media_notes(console, vb: VerifiedBundle) -> None:
    """What reading media took: the parts rebuilt from the recovery data, the recovery files set aside."""
    for part in vb.repaired:
        console.print(f"[yellow]repaired[/] {part}: rebuilt from the stick's recovery data, sha256 checked", highlight=False)
    for note in vb.recovery_not_used:
        console.print(f"[yellow]not used[/] recovery file {note}", highlight=False)
