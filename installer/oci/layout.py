"""The bundle's single OCI image layout (image-spec 1.1): one content-addressed blob store for every image.

    oci/
      oci-layout            {"imageLayoutVersion": "1.0.0"}
      index.json            one descriptor per reference, annotated org.opencontainers.image.ref.name = full ref
      blobs/sha256/<hex>    manifests, indexes, configs, layers, signature manifests

A blob gets its final name only after its sha256 was checked: bytes stream through a hash into a temp file under
the bundle's .tmp/ (same filesystem), then fsync + rename. So a blob file's name is always its digest, an
interrupted write leaves at most a ``.partial`` file in .tmp/ (resumed on the next run), and a blob that is
already there is never fetched again.

Reference names are full references (``127.0.0.1:5000/demo/app:1.0``, ``docker.io/library/nginx:1.27``) so
that ``skopeo copy oci:DIR:REF docker://…`` and ``skopeo inspect oci:DIR:REF`` find them.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from installer.core.errors import BundleError
from installer.core.hashing import CHUNK, digest_hex, fsync_rename
from installer.oci.media_types import INDEX_TYPES, MANIFEST_TYPES, OCI_INDEX, REF_NAME, platform_string

_INDEX_LOCKS: dict[str, threading.Lock] = {}
_INDEX_LOCKS_GUARD = threading.Lock()


def _index_lock_for(path: Path) -> threading.Lock:
    """One lock per layout directory in this process, so several OCILayout objects (build, signing) on the
    same layout never lose each other's index.json updates."""
    key = str(path.resolve())
    with _INDEX_LOCKS_GUARD:
        return _INDEX_LOCKS.setdefault(key, threading.Lock())
LAYOUT_FILE = {"imageLayoutVersion": "1.0.0"}


class DigestMismatch(Exception):
    """The bytes written do not hash to the digest they were written for (nothing was renamed into place)."""

    def __init__(self, expected: str, actual: str):
        super().__init__(f"digest mismatch: expected {expected}, got {actual}")
        self.expected = expected
        self.actual = actual


WRITEBACK_EVERY = 32 * 1024 * 1024
MAX_JSON = 8 * 1024 * 1024  # manifests and configs are small; anything bigger is not one


@dataclass(frozen=True)
class PlatformImage:
    """One runnable image: a manifest, its config and its layers (bottom first)."""

    digest: str
    platform: str  # "linux/amd64", "linux/arm/v7"; "" when the config does not say
    config: dict
    layers: tuple[dict, ...]


class BlobWriter:
    """Append-only writer for one blob's temp file; the running hash covers every byte in the file.

    Every 32 MiB it asks the kernel to start writing the finished range back (fadvise DONTNEED: asynchronous
    writeback, and those pages leave the cache once clean), so the fsync before the rename has little left
    to flush instead of a whole 1 GiB blob, and the bundle does not crowd out the page cache.
    """

    def __init__(self, f, h, offset: int):
        self._f = f
        self._h = h
        self.offset = offset  # bytes already in the file (resumed from a previous run)
        self.written = 0
        self._advised = offset
        self.tap = None  # optional: also handed every chunk (a layer_facts.StreamTap), after the hash

    def write(self, chunk: bytes) -> None:
        self._f.write(chunk)
        self._h.update(chunk)
        if self.tap is not None:
            self.tap(chunk)
        self.written += len(chunk)
        end = self.offset + self.written
        if end - self._advised >= WRITEBACK_EVERY and hasattr(os, "posix_fadvise"):
            self._f.flush()
            try:
                os.posix_fadvise(self._f.fileno(), self._advised, end - self._advised, os.POSIX_FADV_DONTNEED)
            except OSError:
                pass  # only a hint
            self._advised = end

    def restart(self) -> None:
        """Discard what is in the file (the source could not resume) and start from byte 0."""
        self._f.seek(0)
        self._f.truncate()
        if self.tap is not None:
            self.tap.invalidate()
            self.tap = None
        self._h = hashlib.sha256()
        self.offset = 0
        self.written = 0
        self._advised = 0


def _dumps(doc: dict) -> bytes:
    return (json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


@dataclass(frozen=True)
class RefEntry:
    """One reference in index.json."""

    name: str
    digest: str
    media_type: str
    size: int


class OCILayout:
    """An OCI image layout at ``path``; temp files go to ``tmp_dir`` (default: ``path/../.tmp``, the bundle's)."""

    def __init__(self, path: str | os.PathLike, tmp_dir: str | os.PathLike | None = None) -> None:
        self.path = Path(path)
        self.tmp_dir = Path(tmp_dir) if tmp_dir else self.path.parent / ".tmp"
        self._index_lock = _index_lock_for(self.path)
        self._blob_locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self._json: dict[str, dict] = {}  # blobs are content-addressed: a parsed manifest never changes

    # ------------------------------------------------------------------ structure

    @property
    def blobs_dir(self) -> Path:
        return self.path / "blobs" / "sha256"

    @property
    def index_path(self) -> Path:
        return self.path / "index.json"

    def init(self) -> OCILayout:
        """Create oci-layout, an empty index.json and blobs/sha256/ when missing (idempotent)."""
        self.blobs_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        marker = self.path / "oci-layout"
        if not marker.exists():
            self._atomic_write(marker, _dumps(LAYOUT_FILE))
        if not self.index_path.exists():
            self._write_index([])
        return self

    def _atomic_write(self, final: Path, data: bytes) -> None:
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.tmp_dir / f"{final.name}.{os.getpid()}.{threading.get_ident()}.tmp"
        tmp.write_bytes(data)
        fsync_rename(tmp, final)

    # ------------------------------------------------------------------ blobs

    def blob_path(self, digest: str) -> Path:
        try:
            return self.blobs_dir / digest_hex(digest)
        except ValueError as e:
            raise BundleError(f"{self.path}: {e}") from None

    def has_blob(self, digest: str, size: int | None = None) -> bool:
        """True when the blob is present (and has ``size`` bytes, when given). Its name was checked on write."""
        try:
            st = self.blob_path(digest).stat()
        except FileNotFoundError:
            return False
        return size is None or st.st_size == size

    def read_blob(self, digest: str) -> bytes:
        """Read a (small) blob, e.g. a manifest or config. Raises BundleError when absent."""
        try:
            return self.blob_path(digest).read_bytes()
        except FileNotFoundError:
            raise BundleError(f"{self.path}: blob {digest} missing from the OCI layout") from None

    def _blob_lock(self, digest: str) -> threading.Lock:
        with self._locks_lock:
            return self._blob_locks.setdefault(digest, threading.Lock())

    def partial_path(self, digest: str) -> Path:
        return self.tmp_dir / f"oci-{digest_hex(digest)}.partial"

    @contextmanager
    def blob_writer(self, digest: str, resume: bool = True) -> Iterator[BlobWriter]:
        """Write blob ``digest`` through a hash; on clean exit the digest is checked, then the file is renamed.

        With ``resume`` a partial file left by an interrupted run is kept: its bytes are hashed and
        ``writer.offset`` says where to continue. On DigestMismatch the partial file is deleted and nothing
        gets the blob's name. Any other exception keeps the partial file for the next run.
        """
        hexd = digest_hex(digest)
        with self._blob_lock(digest):
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.partial_path(digest)
            h = hashlib.sha256()
            offset = 0
            if resume and tmp.exists():
                with open(tmp, "rb") as f:
                    while chunk := f.read(CHUNK):
                        h.update(chunk)
                        offset += len(chunk)
            f = open(tmp, "ab" if offset else "wb")
            try:
                w = BlobWriter(f, h, offset)
                yield w
                f.flush()
            finally:
                f.close()
            actual = w._h.hexdigest()
            if actual != hexd:
                tmp.unlink(missing_ok=True)
                raise DigestMismatch(digest, "sha256:" + actual)
            fsync_rename(tmp, self.blob_path(digest))

    def write_blob_stream(self, digest: str, chunks: Iterable[bytes]) -> int:
        """Store a blob from an iterable of chunks (no resume); returns its size. Existing blobs are kept."""
        if self.has_blob(digest):
            return self.blob_path(digest).stat().st_size
        with self.blob_writer(digest, resume=False) as w:
            for c in chunks:
                w.write(c)
        return w.written

    def write_blob(self, data: bytes) -> str:
        """Store small in-memory content (a manifest, a config, a signature payload); returns its digest."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if not self.has_blob(digest, len(data)):
            with self.blob_writer(digest, resume=False) as w:
                w.write(data)
        return digest

    def add_file_blob(self, src: str | os.PathLike) -> tuple[str, int]:
        """Hash a local file while copying it into the store (streamed); returns (digest, size)."""
        h = hashlib.sha256()
        with open(src, "rb") as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
        digest = "sha256:" + h.hexdigest()

        def chunks() -> Iterator[bytes]:
            with open(src, "rb") as f:
                while chunk := f.read(CHUNK):
                    yield chunk

        return digest, self.write_blob_stream(digest, chunks())

    def blobs(self) -> list[str]:
        """Digests of every blob file present."""
        if not self.blobs_dir.is_dir():
            return []
        return sorted("sha256:" + p.name for p in self.blobs_dir.iterdir() if p.is_file())

    # ------------------------------------------------------------------ index.json

    def read_index(self) -> dict:
        try:
            doc = json.loads(self.index_path.read_bytes())
        except FileNotFoundError:
            return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
        except ValueError as e:
            raise BundleError(f"{self.index_path}: not valid JSON: {e}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("manifests"), list):
            raise BundleError(f"{self.index_path}: not an OCI image index (no manifests list)")
        return doc

    def _write_index(self, manifests: list[dict]) -> None:
        manifests = sorted(manifests, key=lambda d: (d.get("annotations", {}).get(REF_NAME, ""), d["digest"]))
        data = _dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})
        try:
            if self.index_path.read_bytes() == data:
                return  # unchanged: no rewrite, no fsync (a no-change rebuild stays cheap)
        except FileNotFoundError:
            pass
        self._atomic_write(self.index_path, data)

    def set_refs(self, entries: Iterable[RefEntry]) -> None:
        """Point each reference name at its manifest (replacing an older target); one atomic index.json rewrite.

        Every referenced manifest must already be stored (store content first, refs last).
        """
        entries = list({e.name: e for e in entries}.values())  # one descriptor per name: the last wins
        for e in entries:
            if not self.has_blob(e.digest, e.size):
                raise BundleError(f"{e.name}: manifest {e.digest} is not in the OCI layout")
        with self._index_lock:
            doc = self.read_index()
            names = {e.name for e in entries}
            kept = [d for d in doc["manifests"] if d.get("annotations", {}).get(REF_NAME) not in names]
            for e in entries:
                kept.append({"mediaType": e.media_type, "digest": e.digest, "size": e.size, "annotations": {REF_NAME: e.name}})
            self._write_index(kept)

    def set_ref(self, name: str, digest: str, media_type: str, size: int) -> None:
        """Point one reference name at a stored manifest (see set_refs)."""
        self.set_refs([RefEntry(name, digest, media_type, size)])

    def remove_refs(self, names: Iterable[str]) -> None:
        names = set(names)
        with self._index_lock:
            doc = self.read_index()
            self._write_index([d for d in doc["manifests"] if d.get("annotations", {}).get(REF_NAME) not in names])

    def refs(self) -> dict[str, RefEntry]:
        """Reference name -> RefEntry for every named descriptor in index.json."""
        out: dict[str, RefEntry] = {}
        for i, d in enumerate(self.read_index()["manifests"]):
            ann = d.get("annotations") if isinstance(d, dict) else None
            name = ann.get(REF_NAME) if isinstance(ann, dict) else None
            if not isinstance(d, dict) or (ann is not None and not isinstance(ann, dict)):
                raise BundleError(f"{self.index_path}: manifests[{i}]: not a descriptor object")
            if name is None:
                continue
            digest, size = d.get("digest"), d.get("size", 0)
            if (not isinstance(name, str) or not isinstance(digest, str) or not isinstance(size, int)
                    or not isinstance(d.get("mediaType", ""), str)):
                raise BundleError(f"{self.index_path}: manifests[{i}]: malformed descriptor (name, digest, size, mediaType)")
            out[name] = RefEntry(name, digest, d.get("mediaType", ""), size)
        return out

    def resolve(self, name: str) -> RefEntry:
        """The descriptor a reference name points at; BundleError when the layout has no such reference."""
        entry = self.refs().get(name)
        if entry is None:
            raise BundleError(f"{name}: no such image reference in the OCI layout {self.path}")
        return entry

    def read_manifest(self, digest: str) -> tuple[dict, str]:
        """(parsed manifest, media type) of a stored manifest or index, read by digest."""
        data = self.read_blob(digest)
        try:
            doc = json.loads(data)
        except ValueError:
            raise BundleError(f"{self.path}: blob {digest} is not a JSON manifest") from None
        return doc, doc.get("mediaType", "")

    def read_json(self, digest: str, what: str) -> dict:
        """A manifest or config by digest, parsed once (size-capped: anything bigger is not one); BundleError
        naming ``what`` when it is missing, too big or not a JSON object."""
        if digest in self._json:
            return self._json[digest]
        path = self.blob_path(digest)
        try:
            if path.stat().st_size > MAX_JSON:
                raise BundleError(f"{what}: blob {digest} is {path.stat().st_size} bytes, too big for a manifest or config")
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise BundleError(f"{what}: blob {digest} missing from {self.path}") from None
        except (ValueError, UnicodeDecodeError) as e:
            raise BundleError(f"{what}: blob {digest} is not valid JSON: {e}") from None
        if not isinstance(data, dict):
            raise BundleError(f"{what}: blob {digest} is not a JSON object")
        self._json[digest] = data
        return data

    def platform_images(self, digest: str, what: str) -> list[PlatformImage]:
        """The image(s) behind a manifest or index digest; for an index, each platform whose manifest is present."""
        doc = self.read_json(digest, what)
        media = doc.get("mediaType", "")
        if media in INDEX_TYPES or (not media and "manifests" in doc):
            out = []
            for desc in doc.get("manifests", []):
                ann = desc.get("annotations") or {}
                if ann.get("vnd.docker.reference.type") == "attestation-manifest":
                    continue
                if desc.get("mediaType") not in MANIFEST_TYPES or not self.has_blob(desc.get("digest", "")):
                    continue
                out.append(self._platform_image(desc["digest"], what, platform_string(desc.get("platform"))))
            if not out:
                raise BundleError(f"{what}: index {digest} has no platform manifest present in {self.path}")
            return sorted(out, key=lambda p: (p.platform, p.digest))
        if media in MANIFEST_TYPES or (not media and "layers" in doc):
            return [self._platform_image(digest, what, "", doc)]
        raise BundleError(f"{what}: blob {digest} has media type {media!r}, not an image manifest or index")

    def _platform_image(self, digest: str, what: str, platform: str, doc: dict | None = None) -> PlatformImage:
        doc = doc or self.read_json(digest, what)
        cfg_desc = doc.get("config") or {}
        config = self.read_json(cfg_desc.get("digest", ""), f"{what}: config") if cfg_desc.get("digest") else {}
        if not platform and config.get("os"):
            platform = platform_string({"os": config.get("os"), "architecture": config.get("architecture"),
                                        "variant": config.get("variant")})
        layers = tuple(d for d in doc.get("layers", []) if isinstance(d, dict))
        return PlatformImage(digest=digest, platform=platform, config=config, layers=layers)

    # ------------------------------------------------------------------ checking

    def verify(self, deep: bool = True) -> list[str]:
        """Problems with the layout, one line each (empty list = sound).

        Checks every blob hashes to its name (``deep``), and that every reference reaches all it needs: an index's
        children may be absent (platforms left out on purpose), but a present child must be complete.
        """
        problems: list[str] = []
        if deep:
            for digest in self.blobs():
                h = hashlib.sha256()
                with open(self.blob_path(digest), "rb") as f:
                    while chunk := f.read(CHUNK):
                        h.update(chunk)
                if "sha256:" + h.hexdigest() != digest:
                    problems.append(f"blob {digest}: content hashes to sha256:{h.hexdigest()}")
        for name, entry in sorted(self.refs().items()):
            problems += [f"{name}: {p}" for p in self._check_tree(entry.digest, entry.size, top=True)]
        return problems

    def _check_tree(self, digest: str, size: int | None, top: bool) -> list[str]:
        if not self.has_blob(digest):
            return [f"manifest {digest} missing"]
        if size is not None and not self.has_blob(digest, size):
            return [f"manifest {digest} has the wrong size"]
        doc, mt = self.read_manifest(digest)
        out: list[str] = []
        if "manifests" in doc:
            present = 0
            for child in doc["manifests"]:
                if self.has_blob(child["digest"]):
                    present += 1
                    out += self._check_tree(child["digest"], child.get("size"), top=False)
            if present == 0:
                out.append(f"index {digest} has none of its platform manifests")
            return out
        for d in [doc.get("config")] + list(doc.get("layers") or []):
            if d and not self.has_blob(d["digest"], d.get("size")):
                out.append(f"blob {d['digest']} missing or truncated")
        return out

    def reachable(self) -> set[str]:
        """Digests of every stored blob some reference needs (manifests, present children, configs, layers)."""
        seen: set[str] = set()

        def walk(digest: str) -> None:
            if digest in seen or not self.has_blob(digest):
                return
            seen.add(digest)
            doc, _ = self.read_manifest(digest)
            for child in doc.get("manifests") or []:
                walk(child["digest"])
            for d in [doc.get("config")] + list(doc.get("layers") or []):
                if d and self.has_blob(d["digest"]):
                    seen.add(d["digest"])
            if isinstance(doc.get("subject"), dict):
                walk(doc["subject"]["digest"])

        for entry in self.refs().values():
            walk(entry.digest)
        return seen

    def prune(self) -> list[str]:
        """Delete blobs no reference needs any more (an image dropped from the manifest, a moved tag);
        returns their digests. Run it after the refs are final, before the bundle index is written."""
        keep = self.reachable()
        gone = [d for d in self.blobs() if d not in keep]
        for d in gone:
            self.blob_path(d).unlink(missing_ok=True)
        return gone

    def clean_tmp(self) -> None:
        """Remove partial blob files (e.g. after a successful build)."""
        if self.tmp_dir.is_dir():
            for p in self.tmp_dir.glob("oci-*.partial"):
                p.unlink(missing_ok=True)
