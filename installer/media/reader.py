"""Read a bundle straight from USB media (one or more volumes), never writing to them, never reassembling a file.

``MediaSource(mounts, verified_index_bytes, pubkey).open`` is an opener with the signature copy_verified takes
(rel -> binary stream). Each volume's media.json must verify with the site key and name the sha256 of the
verified index; its listing must match the volume exactly (a stray or missing part is refused by name); a split
file is streamed part after part, each part checked against its own signed sha256 as its last byte is read.

With recovery data (``bundle export --parity``, installer.media.parity) a volume's missing, short or damaged part
is not refused at once: each chunk is checked against its signed digest before it is handed on, and a damaged one
is read instead from the part rebuilt from the volume's PAR2 recovery data (one par2 run per volume, in a local
scratch directory, the rebuilt part's sha256 checked against the signed manifest before any byte of it is used).
Damage the recovery data cannot rebuild is refused naming the parts. ``verify_media`` only reports it.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import os
import shutil
import stat
import tempfile
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from installer.bundle.layout import MAX_INDEX, MAX_SIGSTORE
from installer.bundle.private_copy import CopyResult, copy_verified, directory_opener
from installer.core.atomic import atomic_write_bytes
from installer.core.errors import BundleError, TrustError
from installer.core.hashing import CHUNK, sha256_file
from installer.core.progress import Progress
from installer.core.safe_read import read_regular_file
from installer.media import parity
from installer.media.manifest import CONTROL_FILES, INDEX_FILES, MEDIA, load_manifest, volume_root
from installer.trust.keys import fingerprint, verify_signature

AskVolume = Callable[[int, int], "str | os.PathLike | None"]


@dataclass
class _Volume:
    number: int
    root: Path
    parts: dict[str, dict]
    parity: dict | None = None  # the signed "parity" of media.json: PAR2 recovery files and their digests
    damaged: dict[str, set[int] | None] = field(default_factory=dict)  # part -> damaged chunks (None: all of it)
    bad_recovery: dict[str, str] = field(default_factory=dict)  # recovery file -> why it is not used
    repaired: dict[str, Path] = field(default_factory=dict)  # part -> its rebuilt, checked copy (local disk)
    repair_error: str | None = None
    checked_recovery: bool = False


class MediaSource:
    """The verified view of a set of volumes. Volumes not given are asked for (``ask``) when a part needs them."""

    def __init__(self, mounts: list, index_bytes: bytes, pub, ask: AskVolume | None = None, *, repair: bool = True,
                 scratch: str | os.PathLike | None = None, progress: Progress | None = None):
        """``repair``: a damaged part is rebuilt from the volume's recovery data (in ``scratch``, a local directory,
        default a fresh one in $TMPDIR, removed with this object) before any of its bytes is handed on; without
        it (verify) damage is only recorded in each volume's ``damaged``."""
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
        self.repair = repair
        self.progress = progress or Progress()
        self._scratch_base = Path(scratch) if scratch is not None else None
        self._scratch: Path | None = None
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
            vol = _Volume(n, root, parts, self._check_parity(root, doc.get("parity"), parts))
            self._check_listing(root, n, parts, vol)
            for num, v in list(self.volumes.items()):
                if os.path.realpath(v.root) == os.path.realpath(root):
                    del self.volumes[num]  # a stick swapped in the same port
            self.volumes[n] = vol
            return n

    @staticmethod
    def _check_parity(root: Path, p, parts: dict[str, dict]) -> dict | None:
        if p is None:
            return None
        try:
            ok = (p["format"] == parity.FORMAT and all(parity.is_recovery_name(n) for n in p["files"])
                  and p["blockSize"] % p["chunkSize"] == 0 and p["chunkSize"] > 0
                  and all(len(v.get("chunks", ())) == parity.blocks_of(v["size"], p["chunkSize"])
                          for v in parts.values()))
        except (KeyError, TypeError, AttributeError):
            ok = False
        if not ok:
            raise BundleError(f"{root / MEDIA}: its parity section is not one medai writes: refused")
        return p

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

    def _check_listing(self, root: Path, n: int, parts: dict[str, dict], vol: _Volume) -> None:
        """Exactly the signed parts (and recovery files) are on the volume. A missing or short part is refused,
        unless the volume carries recovery data: then it is recorded as damaged (the repair decides)."""
        label = f"volume {n} of {self.count}"
        recovery = vol.parity["files"] if vol.parity else {}
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
                if rel in recovery:
                    st = os.lstat(p)
                    if not stat.S_ISREG(st.st_mode):
                        raise BundleError(f"{label}: recovery file {rel}: not a regular file: refused")
                    if st.st_size != recovery[rel]["size"]:
                        vol.bad_recovery[rel] = f"{st.st_size} bytes, the signed media manifest says {recovery[rel]['size']}"
                    seen.add(rel)
                    continue
                if rel not in parts:
                    raise BundleError(f"{label}: stray part {rel}: not in the signed media manifest: refused")
                st = os.lstat(p)
                if not stat.S_ISREG(st.st_mode):
                    raise BundleError(f"{label}: part {rel}: not a regular file: refused")
                seen.add(rel)
                if st.st_size != parts[rel]["size"]:
                    if vol.parity:
                        vol.damaged[rel] = set()  # short or long: its chunks are checked as it is read
                        continue
                    raise BundleError(f"{label}: part {rel}: {st.st_size} bytes, the signed media manifest says "
                                      f"{parts[rel]['size']}: refused")
        for rel in set(recovery) - seen:
            vol.bad_recovery[rel] = "missing"
        missing = sorted(set(parts) - seen)
        if missing and vol.parity:
            for rel in missing:
                if parts[rel]["size"]:
                    vol.damaged[rel] = None
        elif missing:
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

    # ------------------------------------------------------------------ damage and repair

    def label(self, vol: _Volume) -> str:
        return f"volume {vol.number} of {self.count}"

    def record_damage(self, vol: _Volume, name: str, chunk: int) -> None:
        with self._lock:
            d = vol.damaged.setdefault(name, set())
            if d is not None:
                d.add(chunk)

    def scratch(self) -> Path:
        with self._lock:
            if self._scratch is None:
                if self._scratch_base is not None:
                    self._scratch_base.mkdir(parents=True, exist_ok=True, mode=0o700)
                self._scratch = Path(tempfile.mkdtemp(prefix=".medai-repair-", dir=self._scratch_base))
                weakref.finalize(self, shutil.rmtree, str(self._scratch), True)
            return self._scratch

    def cleanup(self) -> None:
        with self._lock:
            if self._scratch is not None:
                shutil.rmtree(self._scratch, ignore_errors=True)
                self._scratch = None

    def check_recovery(self, vol: _Volume, into: Path | None = None) -> dict[str, Path]:
        """Read every recovery file of ``vol`` once, hashing it (copied into ``into`` when given); one whose sha256
        differs from the signed manifest is recorded in ``bad_recovery`` and never used. Returns the good ones."""
        good: dict[str, Path] = {}
        files = vol.parity["files"] if vol.parity else {}
        for name, want in sorted(files.items()):
            if name in vol.bad_recovery:
                continue
            h = hashlib.sha256()
            dst = into / name if into is not None else None
            try:
                with directory_opener(vol.root)(name) as src, \
                        (open(os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600), "wb")
                         if dst is not None else io.BytesIO()) as out:
                    left = want["size"] + 1
                    while left:
                        chunk = src.read(min(CHUNK, left))
                        if not chunk:
                            break
                        h.update(chunk)
                        left -= len(chunk)
                        if dst is not None:
                            out.write(chunk)
            except BundleError as e:
                vol.bad_recovery[name] = str(e)
                continue
            if h.hexdigest() != want["sha256"]:
                vol.bad_recovery[name] = f"sha256 {h.hexdigest()} differs from the signed media manifest: not used"
                if dst is not None:
                    dst.unlink()
                continue
            good[name] = dst if dst is not None else vol.root / name
        vol.checked_recovery = True
        return good

    def usable_recovery(self, vol: _Volume) -> int:
        files = vol.parity["files"] if vol.parity else {}
        return sum(int(v["blocks"]) for n, v in files.items() if n not in vol.bad_recovery)

    def verdict(self, vol: _Volume) -> tuple[bool, str]:
        sizes = {n: int(v["size"]) for n, v in vol.parts.items()}
        return parity.verdict(vol.parity, vol.damaged, sizes, self.usable_recovery(vol))

    def repaired_part(self, vol: _Volume, name: str) -> Path:
        """The part rebuilt from the volume's recovery data into the scratch directory, its sha256 checked against
        the signed manifest; the whole volume's damage is rebuilt by one par2 run. Raises naming the parts that
        cannot be rebuilt."""
        label = self.label(vol)
        with self._lock:
            if name in vol.repaired:
                return vol.repaired[name]
            if vol.repair_error:
                raise BundleError(vol.repair_error)
            work = self.scratch() / f"volume-{vol.number}-{os.urandom(4).hex()}"
            work.mkdir(mode=0o700)
            good = self.check_recovery(vol, work)
            present = {}
            for p, v in vol.parts.items():
                path = vol.root / p
                if v["size"] and os.path.isfile(path) and not os.path.islink(path):
                    present[p] = path
            if good:
                with self.progress.task(f"repair of {label} from its PAR2 recovery data", 100) as adv:
                    _done, bad, _text = parity.repair(work, present, good, adv)
            else:
                bad = []
            for p, v in vol.parts.items():
                q = work / p
                if v["size"] and q.is_file() and not q.is_symlink() and q.stat().st_size == v["size"]:
                    if sha256_file(q) == v["sha256"]:
                        vol.repaired[p] = q
            if name not in vol.repaired:
                vol.damaged.setdefault(name, set())
                names = sorted((set(bad) | set(vol.damaged)) - set(vol.repaired))
                _ok, line = self.verdict(vol)
                if not self.usable_recovery(vol):
                    line = "no usable recovery file"
                ignored = sorted(vol.bad_recovery)
                vol.repair_error = (f"{label}: cannot rebuild {', '.join(names[:8])}"
                                    f"{f' (+{len(names) - 8} more)' if len(names) > 8 else ''} from its recovery data "
                                    f"({line}{'; recovery files not used: ' + ', '.join(ignored) if ignored else ''}): "
                                    "refused")
                raise BundleError(vol.repair_error)
            return vol.repaired[name]

    def repaired_names(self) -> list[str]:
        return sorted(f"volume {v.number}: {p}" for v in self.volumes.values() for p in v.repaired)

    def recovery_not_used(self) -> list[str]:
        """The recovery files set aside (missing, or not what the signed media manifest says), with why."""
        return [f"volume {v.number}: {n}: {why}" for v in self.volumes.values() for n, why in sorted(v.bad_recovery.items())]


def _read_full(f, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        got = f.read(n - len(out))
        if not got:
            break
        out += got
    return bytes(out)


class _PartsStream(io.RawIOBase):
    """One file's parts, in order, each hashed and checked against its signed digest when it has been read. With
    recovery data, each chunk is checked against its signed digest before it is handed on; a damaged chunk is
    read from the part rebuilt from the recovery data instead (or, without repair, recorded as damage)."""

    def __init__(self, src: MediaSource, entry: dict):
        self.src, self.entry = src, entry
        self.i = 0
        self.cur: BinaryIO | None = None
        self.left = 0
        self.h = None
        self.part: dict | None = None
        self.vol: _Volume | None = None
        self.buf = memoryview(b"")
        self.digests: list[str] | None = None
        self.chunk = CHUNK
        self.ci = 0
        self.from_repair = False

    def readable(self) -> bool:
        return True

    def _next(self) -> bool:
        parts = self.entry["parts"]
        if self.i >= len(parts):
            return False
        self.part = parts[self.i]
        self.vol = vol = self.src.volume(self.part["volume"])
        name = self.part["name"]
        self.digests = vol.parts[name].get("chunks") if vol.parity else None
        self.chunk = vol.parity["chunkSize"] if self.digests else CHUNK
        self.left, self.h, self.ci, self.from_repair = self.part["size"], hashlib.sha256(), 0, False
        if self.left == 0:
            self.cur = io.BytesIO(b"")
        elif name in vol.repaired or (vol.damaged.get(name, ()) is None and self.src.repair):
            self._use_repaired(0)  # missing or short: rebuilt before its first byte is needed
        else:
            try:
                self.cur = directory_opener(vol.root)(name)
            except BundleError:
                if not vol.parity:
                    raise
                if self.src.repair:
                    self._use_repaired(0)
                else:
                    self.cur = io.BytesIO(b"")  # counted chunk by chunk below
        return True

    def _use_repaired(self, offset: int) -> None:
        path = self.src.repaired_part(self.vol, self.part["name"])
        if self.cur is not None:
            self.cur.close()
        self.cur = open(path, "rb")  # noqa: SIM115  (a local file medai wrote and checked)
        self.cur.seek(offset)
        self.from_repair = True

    def _fill(self) -> None:
        n = min(self.chunk, self.left)
        data = _read_full(self.cur, n)
        name = self.part["name"]
        if self.digests is not None:
            if len(data) != n or parity.chunk_digest(data) != self.digests[self.ci]:
                if self.src.repair and not self.from_repair:
                    self.src.record_damage(self.vol, name, self.ci)
                    self._use_repaired(self.part["size"] - self.left)
                    data = _read_full(self.cur, n)
                if not self.src.repair:
                    self.src.record_damage(self.vol, name, self.ci)
                    data = data + bytes(n - len(data))
                elif len(data) != n or parity.chunk_digest(data) != self.digests[self.ci]:
                    raise BundleError(f"{self.src.label(self.vol)}: part {name}: chunk {self.ci} differs from the "
                                      "signed media manifest after repair: refused")
        elif len(data) < n:
            raise BundleError(f"volume {self.vol.number} of {self.src.count}: part {name}: ended "
                              f"{self.left - len(data)} bytes early: refused")
        self.h.update(data)
        self.left -= n
        self.ci += 1
        self.buf = memoryview(data)

    def _finish_part(self) -> None:
        name = self.part["name"]
        want = self.vol.parts[name]["sha256"]
        got = self.h.hexdigest()
        self.cur.close()
        self.cur = None
        self.i += 1
        if got != want and not (not self.src.repair and name in self.vol.damaged):
            raise BundleError(f"volume {self.vol.number} of {self.src.count}: part {name}: sha256 {got} "
                              f"differs from the signed media manifest ({want}): refused")

    def readinto(self, b) -> int:
        while True:
            if self.buf:
                k = min(len(b), len(self.buf))
                b[:k] = self.buf[:k]
                self.buf = self.buf[k:]
                return k
            if self.cur is None and not self._next():
                return 0
            if self.left == 0:
                self._finish_part()
                continue
            self._fill()
            if self.left == 0:
                self._finish_part()  # checked before its last bytes are handed on

    def close(self) -> None:
        if self.cur is not None:
            self.cur.close()
            self.cur = None
        super().close()


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


@dataclass
class MediaImportResult(CopyResult):
    repaired: list[str] = field(default_factory=list)  # "volume N: PART" rebuilt from the recovery data
    recovery_not_used: list[str] = field(default_factory=list)  # "volume N: FILE: why"


def import_media(mounts: list, dest: str | os.PathLike, pub, ask: AskVolume | None = None,
                 progress: Callable[[int], None] | None = None, repair_progress: Progress | None = None) -> MediaImportResult:
    """Copy the bundle on the media into ``dest`` (a normal bundle directory), resumable; index.json goes last.
    A damaged part is rebuilt from its volume's recovery data in a scratch directory inside ``dest`` (removed at
    the end), checked against its signed sha256, and streamed into the file; the media are only read."""
    index_bytes, control = read_verified_index(mounts[0], pub)
    dest = Path(dest)
    src = MediaSource(mounts, index_bytes, pub, ask, scratch=dest, progress=repair_progress)
    (dest / "index.json").unlink(missing_ok=True)  # finished mark of an earlier import
    if dest.is_dir():
        for old in dest.glob(".medai-repair-*"):  # left by an interrupted import
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old)
    total = MediaImportResult()
    try:
        for group in _volume_order(src):
            if not group:
                continue
            entries = [{"path": f["path"], "size": f["size"], "sha256": f["sha256"]} for f in group]
            r = copy_verified(src.open, entries, dest, progress=progress, workers=1 if len(group) == 1 else None)
            total.copied += r.copied
            total.skipped += r.skipped
            total.bytes_copied += r.bytes_copied
    finally:
        src.cleanup()
    total.repaired = src.repaired_names()
    total.recovery_not_used = src.recovery_not_used()
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
    problems: list[str] = field(default_factory=list)  # not repairable (or not repairable from recovery data)
    damage: list[dict] = field(default_factory=list)  # {volume, part, chunks | "missing or short"}
    repair: list[dict] = field(default_factory=list)  # per damaged volume: {volume, repairable, summary, ...}

    @property
    def ok(self) -> bool:
        return not self.problems and not self.damage and not any(r["recoveryNotUsed"] for r in self.repair)

    @property
    def repairable(self) -> bool:
        """Damaged, and every damaged volume's recovery data rebuilds it (import/install repair on the fly)."""
        return not self.problems and not self.ok and all(r["repairable"] for r in self.repair)

    @property
    def status(self) -> str:
        return "passed" if self.ok else "damaged, repairable" if self.repairable else "failed"


def verify_media(mounts: list, pub, ask: AskVolume | None = None, progress: Callable[[int], None] | None = None) -> MediaVerification:
    """Both signatures, every volume's listing, every part's and every file's sha256, every recovery file's
    sha256; damage a volume's recovery data can rebuild is reported as such. Nothing is written."""
    index_bytes, _control = read_verified_index(mounts[0], pub)
    src = MediaSource(mounts, index_bytes, pub, ask, repair=False)
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
            touched = any(p["name"] in src.volumes[p["volume"]].damaged for p in f["parts"])
            if h.hexdigest() != f["sha256"] and not touched:
                res.problems.append(f"{f['path']}: sha256 {h.hexdigest()} differs from the signed index")
    for vol in sorted(src.volumes.values(), key=lambda v: v.number):
        if not vol.parity:
            continue
        src.check_recovery(vol)
        for name, chunks in sorted(vol.damaged.items()):
            res.damage.append({"volume": vol.number, "part": name,
                               "damage": "missing or short" if chunks is None else f"{len(chunks)} chunk(s) of "
                                         f"{vol.parity['chunkSize']} bytes"})
        if vol.damaged or vol.bad_recovery:
            ok, line = src.verdict(vol)
            res.repair.append({"volume": vol.number, "repairable": ok, "summary": f"{src.label(vol)}: {line}",
                               "parts": sorted(vol.damaged), "recoveryNotUsed": [f"{n}: {w}" for n, w in
                                                                                 sorted(vol.bad_recovery.items())]})
    return res
