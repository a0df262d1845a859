"""Read a bundle straight from USB media (one or more volumes), never writing to them, never reassembling a file.

``media_opener(mounts, verified_index_bytes, pubkey)`` returns an opener with the signature copy_verified takes
(rel -> binary stream). Each volume's media.json must verify with the site key and name the sha256 of the
verified index; its listing must match the volume exactly (a stray or missing part is refused by name); a split
file is streamed part after part, each part checked against its own signed sha256 as its last byte is read.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from installer.bundle.layout import MAX_INDEX, MAX_SIGSTORE
from installer.bundle.private_copy import CopyResult, copy_verified, directory_opener
from installer.core.atomic import atomic_write_bytes
from installer.core.errors import BundleError, TrustError
from installer.core.hashing import CHUNK
from installer.core.safe_read import read_regular_file
from installer.media.manifest import CONTROL_FILES, INDEX_FILES, MEDIA, load_manifest, volume_root
from installer.trust.keys import fingerprint, verify_signature

AskVolume = Callable[[int, int], "str | os.PathLike | None"]


@dataclass
class _Volume:
    number: int
    root: Path
    parts: dict[str, dict]


class MediaSource:
    """The verified view of a set of volumes. Volumes not given are asked for (``ask``) when a part needs them."""

    def __init__(self, mounts: list, index_bytes: bytes, pub, ask: AskVolume | None = None):
        if pub is None:
            raise TrustError("media are read only with the site public key (--key): no part is trusted without it")
        self.pub = pub
        self.index_sha = hashlib.sha256(index_bytes).hexdigest()
        self.index = json.loads(index_bytes)
        self.ask = ask
        self.layout: dict | None = None
        self.files: dict[str, dict] = {}
        self.volumes: dict[int, _Volume] = {}
        self.count = 0
        self._lock = threading.RLock()
        for m in mounts:
            self.add(m)
        if not self.volumes:
            raise BundleError("no media volume given")

    # ------------------------------------------------------------------ volumes

    def add(self, mount) -> int:
        root = volume_root(mount)
        doc = load_manifest(root, self.pub)
        if doc.get("index", {}).get("sha256") != self.index_sha:
            raise BundleError(f"{root}: volume {doc.get('label')} carries index sha256 {doc.get('index', {}).get('sha256')}, "
                              f"the verified index is {self.index_sha}: a volume of another bundle: refused")
        with self._lock:
            if self.layout is None:
                self._set_layout(doc, root)
            elif doc["layoutSha256"] != self.layout_sha:
                raise BundleError(f"{root}: volume {doc.get('label')} has another layout than the first volume: refused")
            n, m = doc.get("volume"), doc.get("volumes")
            if not isinstance(n, int) or m != self.count or not 1 <= n <= m:
                raise BundleError(f"{root / MEDIA}: volume {n} of {m}: not a volume of this {self.count}-volume media")
            parts = doc.get("parts") or {}
            planned = {p["name"]: p for f in self.layout["files"] for p in f["parts"] if p["volume"] == n}
            if set(parts) != set(planned) or any(parts[k]["size"] != planned[k]["size"] for k in planned):
                raise BundleError(f"{root / MEDIA}: its part list disagrees with its layout: refused")
            self._check_listing(root, n, parts)
            for num, v in list(self.volumes.items()):
                if os.path.realpath(v.root) == os.path.realpath(root):
                    del self.volumes[num]  # a stick swapped in the same port
            self.volumes[n] = _Volume(n, root, parts)
            return n

    @property
    def layout_sha(self) -> str:
        return self._layout_sha

    def _set_layout(self, doc: dict, root: Path) -> None:
        layout = doc["layout"]
        files = {f["path"]: f for f in layout["files"]}
        for entry in self.index["files"]:
            f = files.get(entry["path"])
            if f is None:
                raise BundleError(f"{entry['path']}: listed in the index but not on the media ({root / MEDIA}): refused")
            if f["size"] != entry["size"] or f["sha256"] != entry["sha256"]:
                raise BundleError(f"{entry['path']}: the media manifest disagrees with the index on size or sha256: refused")
            offset = 0
            for p in f["parts"]:
                if p["offset"] != offset:
                    raise BundleError(f"{p['name']}: offset {p['offset']}, expected {offset}: refused")
                offset += p["size"]
            if offset != f["size"]:
                raise BundleError(f"{entry['path']}: its parts hold {offset} bytes, the index says {f['size']}: refused")
        extra = set(files) - {e["path"] for e in self.index["files"]}
        if extra:
            raise BundleError(f"{sorted(extra)[0]}: on the media but not in the index: refused")
        self.layout, self.files, self.count = layout, files, int(layout["volumes"])
        self._layout_sha = doc["layoutSha256"]

    def _check_listing(self, root: Path, n: int, parts: dict[str, dict]) -> None:
        label = f"volume {n} of {self.count}"
        seen = set()
        for dirpath, dirs, names in os.walk(root):
            for d in dirs:
                if (Path(dirpath) / d).is_symlink():
                    raise BundleError(f"{label}: {Path(dirpath, d).relative_to(root)}: symlink: refused")
            for name in names:
                p = Path(dirpath) / name
                rel = p.relative_to(root).as_posix()
                if rel in CONTROL_FILES:
                    continue
                if rel not in parts:
                    raise BundleError(f"{label}: stray part {rel}: not in the signed media manifest: refused")
                st = os.lstat(p)
                if not stat.S_ISREG(st.st_mode):
                    raise BundleError(f"{label}: part {rel}: not a regular file: refused")
                if st.st_size != parts[rel]["size"]:
                    raise BundleError(f"{label}: part {rel}: {st.st_size} bytes, the signed media manifest says "
                                      f"{parts[rel]['size']}: refused")
                seen.add(rel)
        missing = sorted(set(parts) - seen)
        if missing:
            raise BundleError(f"{label}: part {missing[0]} is missing{f' (+{len(missing) - 1} more)' if len(missing) > 1 else ''}: refused")

    def volume(self, n: int) -> _Volume:
        with self._lock:
            if n in self.volumes:
                return self.volumes[n]
            if self.ask is None:
                raise BundleError(f"volume {n} of {self.count} is needed: give it with --volume DIR")
            got = self.ask(n, self.count)
            if got is None:
                raise BundleError(f"volume {n} of {self.count} was not given: stopped (rerun to resume)")
            added = self.add(got)
            if added != n:
                raise BundleError(f"{got}: that is volume {added} of {self.count}, volume {n} was asked for")
            return self.volumes[n]

    # ------------------------------------------------------------------ reading

    def open(self, rel: str) -> BinaryIO:
        f = self.files.get(rel)
        if f is None:
            raise BundleError(f"{rel}: not on the media")
        return _PartsStream(self, f)


class _PartsStream(io.RawIOBase):
    """One file's parts, in order, each hashed and checked against its signed digest when it has been read."""

    def __init__(self, src: MediaSource, entry: dict):
        self.src, self.entry = src, entry
        self.i = 0
        self.cur: BinaryIO | None = None
        self.left = 0
        self.h = None
        self.part: dict | None = None
        self.vol: _Volume | None = None

    def readable(self) -> bool:
        return True

    def _next(self) -> bool:
        parts = self.entry["parts"]
        if self.i >= len(parts):
            return False
        self.part = parts[self.i]
        self.vol = self.src.volume(self.part["volume"])
        self.cur = directory_opener(self.vol.root)(self.part["name"])
        self.left, self.h = self.part["size"], hashlib.sha256()
        return True

    def _finish_part(self) -> None:
        want = self.vol.parts[self.part["name"]]["sha256"]
        got = self.h.hexdigest()
        self.cur.close()
        self.cur = None
        self.i += 1
        if got != want:
            raise BundleError(f"volume {self.vol.number} of {self.src.count}: part {self.part['name']}: sha256 {got} "
                              f"differs from the signed media manifest ({want}): refused")

    def readinto(self, b) -> int:
        while True:
            if self.cur is None and not self._next():
                return 0
            if self.left == 0:
                self._finish_part()
                continue
            view = memoryview(b)[:min(len(b), self.left)]
            n = self.cur.readinto(view)
            if not n:
                raise BundleError(f"volume {self.vol.number} of {self.src.count}: part {self.part['name']}: ended "
                                  f"{self.left} bytes early: refused")
            self.h.update(view[:n])
            self.left -= n
            if self.left == 0:
                self._finish_part()
            return n

    def close(self) -> None:
        if self.cur is not None:
            self.cur.close()
            self.cur = None
        super().close()


def media_opener(mounts: list, verified_index_bytes: bytes, pubkey, ask: AskVolume | None = None) -> Callable[[str], BinaryIO]:
    """An opener for copy_verified over media volumes (see module doc)."""
    return MediaSource(mounts, verified_index_bytes, pubkey, ask).open


# ---------------------------------------------------------------------------------------- index from media


def read_verified_index(mount, pub) -> tuple[bytes, dict[str, bytes]]:
    """index.json from a volume, checked against index.json.sig with the site key; plus the control files."""
    if pub is None:
        raise TrustError("media are read only with the site public key (--key)")
    root = volume_root(mount)
    control = {}
    for n in INDEX_FILES:  # regular files only (a FIFO must not hang this), each read with a cap
        data = read_regular_file(root / n, MAX_INDEX if n == "index.json" else MAX_SIGSTORE, BundleError)
        if data is not None:
            control[n] = data
    if "index.json" not in control:
        raise BundleError(f"{root}: no index.json: not a medai media volume")
    if "index.json.sig" not in control:
        raise TrustError(f"{root}/index.json.sig: missing: the bundle on the media is not signed")
    try:
        sig = base64.b64decode(control["index.json.sig"].strip(), validate=True)
    except (ValueError, binascii.Error):
        raise TrustError(f"{root}/index.json.sig: not base64") from None
    if not verify_signature(pub, sig, control["index.json"]):
        raise TrustError(f"{root}/index.json: signature does not verify with key {fingerprint(pub)}: refused")
    return control["index.json"], control


def _volume_order(src: MediaSource) -> list[list[dict]]:
    """Files grouped by the last volume they need, a file begun on an earlier volume first in its group, so one
    USB port suffices: volume 1 is read to its end before volume 2 is asked for."""
    groups: dict[int, list[dict]] = {}
    for f in src.layout["files"]:
        groups.setdefault(max(p["volume"] for p in f["parts"]), []).append(f)
    out = []
    for v in sorted(groups):
        spanning = [f for f in groups[v] if min(p["volume"] for p in f["parts"]) < v]
        out += [[f] for f in spanning]
        out.append([f for f in groups[v] if f not in spanning])
    return out


def import_media(mounts: list, dest: str | os.PathLike, pub, ask: AskVolume | None = None,
                 progress: Callable[[int], None] | None = None) -> CopyResult:
    """Copy the bundle on the media into ``dest`` (a normal bundle directory), resumable; index.json goes last."""
    index_bytes, control = read_verified_index(mounts[0], pub)
    src = MediaSource(mounts, index_bytes, pub, ask)
    dest = Path(dest)
    (dest / "index.json").unlink(missing_ok=True)  # finished mark of an earlier import
    total = CopyResult()
    for group in _volume_order(src):
        if not group:
            continue
        entries = [{"path": f["path"], "size": f["size"], "sha256": f["sha256"]} for f in group]
        r = copy_verified(src.open, entries, dest, progress=progress, workers=1 if len(group) == 1 else None)
        total.copied += r.copied
        total.skipped += r.skipped
        total.bytes_copied += r.bytes_copied
    for name in ("index.json.sig", "index.sigstore.json", "index.json"):
        if name in control:
            atomic_write_bytes(dest / name, control[name])
    return total


@dataclass
class MediaVerification:
    index_sha256: str
    volumes: int
    files: int = 0
    bytes: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_media(mounts: list, pub, ask: AskVolume | None = None, progress: Callable[[int], None] | None = None) -> MediaVerification:
    """Both signatures, every volume's listing, every part's and every file's sha256; nothing is written."""
    index_bytes, _control = read_verified_index(mounts[0], pub)
    src = MediaSource(mounts, index_bytes, pub, ask)
    res = MediaVerification(hashlib.sha256(index_bytes).hexdigest(), src.count)
    for group in _volume_order(src):
        for f in group:
            h = hashlib.sha256()
            try:
                with src.open(f["path"]) as s:
                    while True:
                        chunk = s.read(CHUNK)
                        if not chunk:
                            break
                        h.update(chunk)
                        if progress:
                            progress(len(chunk))
            except BundleError as e:
                res.problems.append(str(e))
                continue
            res.files += 1
            res.bytes += f["size"]
            if h.hexdigest() != f["sha256"]:
                res.problems.append(f"{f['path']}: sha256 {h.hexdigest()} differs from the signed index")
    return res


def bundle_source(path, verified_index_bytes: bytes, pubkey, volumes: list | None = None,
                  ask: AskVolume | None = None) -> Callable[[str], BinaryIO]:
    """The opener for copy_verified over whatever ``path`` is: exported media (their volume 1, or any volume, and
    ``volumes``) or a plain bundle directory. ``verified_index_bytes``: index.json after its signature was checked
    (on media it lies in volume_root(path), beside media.json)."""
    if (volume_root(path) / MEDIA).is_file():
        return media_opener([path, *(volumes or [])], verified_index_bytes, pubkey, ask)
    return directory_opener(path)
