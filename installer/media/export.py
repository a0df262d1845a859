"""`medai bundle export`: write a verified bundle onto USB media, split for FAT32, spanning sticks if needed.

Every file larger than the part limit becomes ``PATH.part0000``, ``PATH.part0001``, ...; each part is written to a
temporary name, fsynced, dropped from the page cache, read back and hashed, then renamed. A rerun re-hashes a
part already in place and skips it when it matches (resumable). media.json (signed) is removed first and written
last, so a half-written stick never carries a manifest. Reading is in installer.media.reader.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import shutil
import stat
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from installer.bundle.layout import BundleLayout
from installer.bundle.private_copy import safe_relpath
from installer.core.atomic import atomic_write_bytes, fsync_dir
from installer.core.errors import BundleError, TrustError
from installer.core.hashing import CHUNK, sha256_file
from installer.core.progress import Progress
from installer.media import parity
from installer.media.fs import Mount, free_space, max_file_size, mount_of
from installer.media.manifest import CONTROL_FILES, INDEX_FILES, MEDIA, MEDIA_SIG, VOLUME_DIR, layout_sha256, sign_manifest, volume_root
from installer.media.reader import MediaSource, import_media, verify_media  # noqa: F401
from installer.trust.keys import SigningKey, verify_signature

FAT_BAD_CHARS = set('"*:<>?\\|')
AskVolume = Callable[[int, int], "Path | None"]


def parse_size(text: str) -> int:
    """'4G', '512MiB', '1000000' -> bytes (K/M/G/T are binary multiples, as on a stick's label they rarely are)."""
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    mult = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4}
    try:
        if t and t[-1] in mult:
            return int(float(t[:-1]) * mult[t[-1]])
        return int(t)
    except ValueError:
        raise BundleError(f"size {text!r}: not a number of bytes (e.g. 4294967295, 512M, 3.5G)") from None


def _roundup(n: int, unit: int) -> int:
    return max(unit, -(-n // unit) * unit) if n else unit


def plan_layout(files: list[dict], max_part: int | None, volume_size: int | None, unit: int, reserve: int) -> dict:
    """Assign every file to parts (<= max_part) and parts to volumes (<= volume_size with ``reserve`` kept free)."""
    if volume_size is not None and volume_size - reserve < 4 * unit:
        raise BundleError(f"--volume-size {volume_size}: too small; the index and manifests alone need {reserve} bytes")
    vol, used = 1, 0
    out = []
    for f in sorted(files, key=lambda e: e["path"]):
        size = int(f["size"])
        pieces: list[dict] = []
        offset = 0
        while offset < size or not pieces:
            take = size - offset
            if max_part is not None:
                take = min(take, max_part)
            if volume_size is not None:
                room = (volume_size - reserve - used) // unit * unit
                if room < unit:
                    vol, used = vol + 1, 0
                    continue
                take = min(take, room)
            pieces.append({"volume": vol, "offset": offset, "size": take})
            used += _roundup(take, unit)
            offset += take
        split = len(pieces) > 1
        for i, p in enumerate(pieces):
            p["name"] = f"{f['path']}.part{i:04d}" if split else f["path"]
        out.append({"path": f["path"], "size": size, "sha256": f["sha256"], "parts": pieces})
    return {"maxPartSize": max_part, "volumeSize": volume_size, "volumes": vol, "files": out}


def check_fat_names(layout: dict) -> None:
    """FAT refuses some characters and folds case: two names differing in case would overwrite each other."""
    seen: dict[tuple[int, str], str] = {}
    for f in layout["files"]:
        for p in f["parts"]:
            parts = PurePosixPath(p["name"]).parts
            for i, comp in enumerate(parts):
                if FAT_BAD_CHARS & set(comp) or comp.endswith((".", " ")) or len(comp.encode("utf-16-le")) > 510:
                    raise BundleError(f"{f['path']}: the name {comp!r} cannot be stored on FAT32: refused")
                key = (p["volume"], "/".join(parts[:i + 1]).lower())
                whole = "/".join(parts[:i + 1])
                if seen.setdefault(key, whole) != whole:
                    raise BundleError(f"{f['path']}: {whole!r} and {seen[key]!r} differ only in case, "
                                      "which FAT32 cannot hold apart: refused")


@dataclass
class VolumeResult:
    volume: int
    target: str
    fstype: str
    parts_written: int = 0
    parts_skipped: int = 0
    bytes_written: int = 0
    parity_percent: float = 0.0
    recovery_files: int = 0
    recovery_bytes: int = 0


@dataclass
class ExportSummary:
    bundle: str
    index_sha256: str
    volumes: list[VolumeResult] = field(default_factory=list)
    split_files: int = 0
    max_part_size: int | None = None
    seconds: float = 0.0

    def to_json(self) -> dict:
        return {"bundle": self.bundle, "indexSha256": self.index_sha256, "splitFiles": self.split_files,
                "maxPartSize": self.max_part_size, "seconds": self.seconds,
                "volumes": [v.__dict__ for v in self.volumes]}


def _check_index_signed_by(layout: BundleLayout, index_bytes: bytes, key: SigningKey) -> None:
    try:
        sig = base64.b64decode(layout.index_sig.read_bytes().strip(), validate=True)
    except FileNotFoundError:
        raise TrustError(f"{layout.index_sig}: missing: only a signed bundle is exported") from None
    except (ValueError, binascii.Error):
        raise TrustError(f"{layout.index_sig}: not base64") from None
    if not verify_signature(key.public, sig, index_bytes):
        raise TrustError(f"{layout.index}: not signed by {key.fingerprint}; the media manifest must be signed "
                         "with the key that signed the bundle")


def _drop_cache(fd: int) -> None:
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except (AttributeError, OSError):
        pass


def _hash_stream(src: BinaryIO, size: int, hashers: list, advance=None) -> None:
    """Read ``size`` bytes of ``src`` into every hasher (anything with update())."""
    left = size
    while left:
        chunk = src.read(min(CHUNK, left))
        if not chunk:
            raise BundleError(f"{getattr(src, 'name', 'source')}: ended {left} bytes early")
        for h in hashers:
            h.update(chunk)
        left -= len(chunk)
        if advance:
            advance(len(chunk))


def _write_part(src: BinaryIO, final: Path, size: int, h_file, advance, chunks: parity.ChunkHasher | None = None,
                deferred: dict | None = None):
    """Write one part from ``src`` (positioned at its offset); returns (sha256, written?, whole-file hasher).
    ``chunks`` (with --parity) gets the part's bytes for its chunk digests. With ``deferred`` (with --parity) the
    read-back is left to `par2 create`, which reads every part from the medium anyway: the part's md5 and size are
    kept there, {final: (md5, size)}, to be compared with the ones par2 read (one read of the stick, not two)."""
    start = src.tell()
    if final.is_file() and not final.is_symlink() and final.stat().st_size == size:
        saved = h_file.copy()
        h = hashlib.sha256()
        probe = parity.ChunkHasher(chunks.size) if chunks is not None else None
        _hash_stream(src, size, [h, h_file, *([probe] if probe else [])])
        if sha256_file(final) == h.hexdigest():  # already there and verified: a resumed export skips it
            if advance:
                advance(size)
            if chunks is not None:
                chunks.digests = probe.finish()
            return h.hexdigest(), False, h_file
        src.seek(start)
        h_file = saved
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f"{final.name}.{uuid.uuid4().hex[:8]}.tmp")  # unique, created here: never a planted link
    h = hashlib.sha256()
    md5 = hashlib.md5(usedforsecurity=False) if deferred is not None and size else None
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644), "wb") as out:
        left = size
        while left:
            chunk = src.read(min(CHUNK, left))
            if not chunk:
                raise BundleError(f"{getattr(src, 'name', 'source')}: ended {left} bytes early")
            h.update(chunk)
            if md5 is not None:
                md5.update(chunk)
            h_file.update(chunk)
            if chunks is not None:
                chunks.update(chunk)
            out.write(chunk)
            left -= len(chunk)
            if advance:
                advance(len(chunk))
        out.flush()
        os.fsync(out.fileno())
        _drop_cache(out.fileno())
    if md5 is not None:  # read back by par2 create (compared in _write_recovery)
        os.replace(tmp, final)
        deferred[final] = (md5.digest(), size)
        return h.hexdigest(), True, h_file
    back = sha256_file(tmp)  # read back from the medium, not from what was handed to write()
    if back != h.hexdigest():
        tmp.unlink(missing_ok=True)
        raise BundleError(f"{final}: read back sha256 {back}, wrote {h.hexdigest()}: the medium is failing: refused")
    os.replace(tmp, final)
    return back, True, h_file


def refuse_links(target: Path, root: Path, mountpoint: Path) -> None:
    """Export writes and deletes only in directories it checked: a symlink on the path from the mount point to
    `target`, `root` (STICK/medai-bundle) being one, or any symlink or special file inside it is refused, naming
    it, before anything is touched (a planted STICK/medai-bundle -> /etc would otherwise be emptied and written
    to, as root)."""
    p = Path(os.path.abspath(target))
    while p != mountpoint and p != p.parent:
        if p.is_symlink():
            raise BundleError(f"{p}: a symlink on the path to the stick: refused, nothing written (give the real "
                              "mount point)")
        p = p.parent
    if root.is_symlink():
        raise BundleError(f"{root}: a symlink: refused, nothing written or deleted (remove it from the stick)")
    if not root.exists():
        return
    if not root.is_dir():
        raise BundleError(f"{root}: not a directory: refused, nothing written (remove it from the stick)")
    for dirpath, dirs, names in os.walk(root):
        for n in dirs + names:
            q = Path(dirpath) / n
            mode = q.lstat().st_mode
            if stat.S_ISLNK(mode) or not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                kind = "a symlink" if stat.S_ISLNK(mode) else "a special file"
                raise BundleError(f"{q}: {kind} on the stick: refused, nothing written or deleted (remove it)")


def _existing_files(root: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    if not root.is_dir():
        return out
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            p = Path(dirpath) / n
            out[p.relative_to(root).as_posix()] = p.lstat().st_size
    return out


@dataclass
class ExportOptions:
    bundle: Path
    targets: list[Path]
    sign_key: SigningKey
    max_file_size: int | None = None
    volume_size: int | None = None
    progress: Progress | None = None
    ask: AskVolume | None = None  # asks the operator for volume N of M's mount when --to did not name it
    parity: float = parity.DEFAULT_PERCENT  # recovery data, % of each volume's PAR2 blocks; 0 = none


def export_bundle(opts: ExportOptions) -> ExportSummary:
    started = time.monotonic()
    layout = BundleLayout.at(opts.bundle)
    index_bytes = layout.read_index_bytes()
    index = layout.parse_index(index_bytes)
    _check_index_signed_by(layout, index_bytes, opts.sign_key)
    for f in index["files"]:
        safe_relpath(f["path"], f"{layout.index}: file")
    control = {n: (layout.root / n).read_bytes() for n in INDEX_FILES if (layout.root / n).is_file()}
    progress = opts.progress or Progress()
    summary = ExportSummary(str(layout.root), hashlib.sha256(index_bytes).hexdigest())

    first = _target(opts, 1, None)
    mount = mount_of(first)
    max_part = max_file_size(mount, opts.max_file_size)
    _free, unit = free_space(first, mount)
    unit = min(max(unit, 512), 64 * 1024)
    nfiles = len(index["files"])
    est_parts = nfiles + sum(int(f["size"]) // max_part for f in index["files"]) if max_part else nfiles
    if not 0 <= opts.parity <= 100:
        raise BundleError(f"--parity {opts.parity}: a percentage from 0 (no recovery data) to 100")
    if opts.parity:
        parity.par2_binary()  # the tool is there before anything is written
    # the manifest lists every part's chunk digests with parity: room for them
    chunk_room = 34 * (2 * est_parts + parity.TARGET_BLOCKS + sum(int(f["size"]) for f in index["files"]) // parity.MAX_CHUNK)
    reserve = (sum(_roundup(len(b), unit) for b in control.values()) + _roundup(700 * (est_parts + 8), unit) + 4 * unit
               + (_roundup(chunk_room, unit) if opts.parity else 0))
    volume_size = opts.volume_size
    if volume_size is not None and opts.parity:  # the parts' share of each stick; the rest is for recovery files
        volume_size = reserve + int((volume_size - reserve) / (1 + opts.parity / 100 * 1.15))
    plan = plan_layout(index["files"], max_part, volume_size, unit, reserve)
    check_fat_names(plan)  # cheap, and a layout valid on FAT is valid everywhere
    summary.max_part_size = max_part
    summary.split_files = sum(1 for f in plan["files"] if len(f["parts"]) > 1)
    nvol = plan["volumes"]

    for vol in range(1, nvol + 1):
        target = first if vol == 1 else _target(opts, vol, nvol)
        summary.volumes.append(_export_volume(layout, plan, vol, nvol, target, control, index, index_bytes,
                                              opts.sign_key, reserve, progress, opts.parity))
    summary.seconds = round(time.monotonic() - started, 3)
    return summary


def _target(opts: ExportOptions, vol: int, nvol: int | None) -> Path:
    if vol <= len(opts.targets):
        return opts.targets[vol - 1]
    if opts.ask is not None:
        got = opts.ask(vol, nvol or vol)
        if got is not None:
            return Path(got)
    raise BundleError(f"the bundle needs {nvol} volumes with --volume-size; give --to for volume {vol} of {nvol}")


def _export_volume(layout: BundleLayout, plan: dict, vol: int, nvol: int, target: Path, control: dict[str, bytes],
                   index: dict, index_bytes: bytes, key: SigningKey, reserve: int, progress: Progress,
                   percent: float = 0.0) -> VolumeResult:
    mount = _writable_volume(target, plan, vol, nvol)
    res = VolumeResult(vol, str(target), mount.fstype)
    root = target / VOLUME_DIR
    refuse_links(target, root, Path(mount.mountpoint))  # before anything is deleted or written
    mine = [(f, p) for f in plan["files"] for p in f["parts"] if p["volume"] == vol]
    expected = {p["name"]: p["size"] for _f, p in mine}
    existing = _existing_files(root)
    free, unit = free_space(target, mount)
    pplan = parity.plan(expected.values(), percent)
    if pplan is not None and any(parity.is_recovery_name(n) for n in expected):
        raise BundleError(f"{target}: the bundle holds a file named like the recovery files ({parity.BASENAME}*): "
                          "use --parity 0")
    # recovery files are always written anew (cheaper than proving the old ones match): they count as stale
    stale = {n: s for n, s in existing.items() if n not in CONTROL_FILES and expected.get(n) != s}
    reclaim = sum(_roundup(s, unit) for s in stale.values())
    rec_need = parity.estimate_bytes(pplan, len(expected), sum(len(n) for n in expected))
    need = sum(_roundup(s, unit) for n, s in expected.items() if existing.get(n) != s) + reserve + rec_need
    if need > free + reclaim:
        raise BundleError(f"{target}: volume {vol} of {nvol} needs {need} bytes"
                          f"{f' ({rec_need} of them recovery data, --parity {percent:g})' if rec_need else ''}, {free} free"
                          f"{f' (+{reclaim} from stale files)' if reclaim else ''}: nothing written")

    root.mkdir(parents=True, exist_ok=True)
    for name in (MEDIA, MEDIA_SIG):  # the 'finished' mark goes first
        (root / name).unlink(missing_ok=True)
    for name in stale:
        (root / name).unlink()
    for name in INDEX_FILES:
        if name in control:
            atomic_write_bytes(root / name, control[name])
        else:
            (root / name).unlink(missing_ok=True)

    deferred: dict[Path, tuple[bytes, int]] = {}  # parts whose read-back is par2's read
    with progress.task(f"volume {vol} of {nvol} -> {target}", sum(p["size"] for _f, p in mine)) as advance:
        parts_sha = _write_parts(layout, plan, vol, root, pplan, deferred, advance, res)
    for d in sorted({(root / n).parent for n in expected}, key=lambda p: -len(p.parts)):
        fsync_dir(d)
    rec = _write_recovery(root, [n for n, s in expected.items() if s], pplan, plan["maxPartSize"], vol, nvol, progress,
                          deferred)
    if rec:
        res.parity_percent = percent
        res.recovery_files = len(rec)
        res.recovery_bytes = sum(r["size"] for r in rec.values())

    doc = {
        "apiVersion": "medai/v1", "kind": "MediaManifest",
        "index": {"sha256": hashlib.sha256(index_bytes).hexdigest(), "name": index.get("name"),
                  "version": index.get("version")},
        "volume": vol, "volumes": nvol, "label": f"{vol} of {nvol}",
        "layout": plan, "layoutSha256": layout_sha256(plan), "parts": parts_sha,
    }
    if rec:
        doc["parity"] = {**pplan, "tool": "par2cmdline-turbo", "main": parity.MAIN, "files": rec}
    data, sig = sign_manifest(doc, key)
    atomic_write_bytes(root / MEDIA, data)
    atomic_write_bytes(root / MEDIA_SIG, sig)
    return res


def _writable_volume(target: Path, plan: dict, vol: int, nvol: int) -> Mount:
    """The mount of a stick that can take this volume: a directory, writable, files as large as the planned parts."""
    if not target.is_dir():
        raise BundleError(f"{target}: not a directory (mount the stick and give its mount point)")
    mount: Mount = mount_of(target)
    if mount.read_only:
        raise BundleError(f"{target}: mounted read-only ({mount.fstype}): cannot export onto it")
    limit = max_file_size(mount, None)
    if limit is not None and plan["maxPartSize"] is not None and plan["maxPartSize"] > limit or \
            (limit is not None and plan["maxPartSize"] is None):
        raise BundleError(f"{target}: volume {vol} of {nvol} is {mount.fstype} (files up to {limit} bytes), "
                          f"but the layout was planned for parts of {plan['maxPartSize']} bytes: use the same kind of stick")
    return mount


def _write_parts(layout: BundleLayout, plan: dict, vol: int, root: Path, pplan: dict | None,
                 deferred: dict[Path, tuple[bytes, int]], advance, res: VolumeResult) -> dict[str, dict]:
    """Every part of this volume written (or kept when already right), each file's whole sha256 checked against
    its index on the volume holding its last part; returns {part name: size, sha256, chunks}."""
    parts_sha: dict[str, dict] = {}
    for f in [f for f in plan["files"] if any(p["volume"] == vol for p in f["parts"])]:
        last = max(i for i, p in enumerate(f["parts"]) if p["volume"] == vol)
        h_file = hashlib.sha256()
        with open(layout.root / f["path"], "rb") as src:
            for p in f["parts"][:last + 1]:
                if p["volume"] != vol:
                    _hash_stream(src, p["size"], [h_file])
                    continue
                ch = parity.ChunkHasher(pplan["chunkSize"]) if pplan else None
                sha, wrote, h_file = _write_part(src, root / p["name"], p["size"], h_file, advance, ch,
                                                 deferred if pplan else None)
                parts_sha[p["name"]] = {"size": p["size"], "sha256": sha}
                if ch is not None and p["size"]:
                    parts_sha[p["name"]]["chunks"] = ch.finish()
                res.parts_written += wrote
                res.parts_skipped += not wrote
                res.bytes_written += p["size"] if wrote else 0
        if last == len(f["parts"]) - 1 and h_file.hexdigest() != f["sha256"]:
            raise BundleError(f"{layout.root / f['path']}: sha256 {h_file.hexdigest()} differs from its index "
                              f"({f['sha256']}): the source bundle is damaged: refused")
    return parts_sha


def _write_recovery(root: Path, names: list[str], pplan: dict | None, max_file: int | None, vol: int, nvol: int,
                    progress: Progress, deferred: dict[Path, tuple[bytes, int]]) -> dict[str, dict]:
    """par2 create over this volume's parts, read from the stick (after each was fsynced and dropped from the page
    cache): the md5 par2 records for each part is its read-back, compared with the md5 of what was written. Each
    recovery file is fsynced, dropped from the page cache, read back and compared, then renamed into
    medai-bundle/. Returns {name: {size, sha256, blocks}} for the manifest."""
    if pplan is None:
        return {}
    total = sum((root / n).stat().st_size for n in names)
    with progress.task(f"parity for volume {vol} of {nvol} ({pplan['percent']:g} %, PAR2)", total) as advance:
        made = parity.create(root, names, pplan, max_file, advance)
    work = next(iter(made.values())).parent
    out: dict[str, dict] = {}
    try:
        read = parity.file_md5s(made[parity.MAIN])
        for final, (md5, size) in deferred.items():
            got = read.get(final.relative_to(root).as_posix())
            if got != (md5, size):
                shown = f"md5 {got[0].hex()} ({got[1]} bytes)" if got else "nothing"
                raise BundleError(f"{final}: read back {shown}, wrote md5 {md5.hex()} ({size} bytes): the medium is "
                                  "failing: refused")
        for name, path in made.items():
            if max_file is not None and path.stat().st_size > max_file:
                raise BundleError(f"{path}: {path.stat().st_size} bytes, over the stick's file limit {max_file}: refused")
            written = sha256_file(path)
            with open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW)) as f:
                os.fsync(f.fileno())
                _drop_cache(f.fileno())
            back = sha256_file(path)
            if back != written:
                raise BundleError(f"{root / name}: read back sha256 {back}, wrote {written}: the medium is failing: refused")
            os.replace(path, root / name)
            out[name] = {"size": (root / name).stat().st_size, "sha256": back, "blocks": parity.recovery_blocks_in(name)}
        fsync_dir(root)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def read_label(path: str | os.PathLike) -> str:
    """The "N of M" label of a volume, read without trusting it (for prompts only)."""

    try:
        doc = json.loads((volume_root(path) / MEDIA).read_bytes())
        return f"volume {doc['label']} of bundle {doc['index']['name']} {doc['index']['version']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "no medai media manifest"
