"""`installer.bundle.verify.verify_files` throughput vs `sha256sum` and `openssl dgst -sha256`, same files.

    .venv/bin/python bench/bench_verify.py [--workdir DIR] [--single-mib 1024] [--files 4] [--file-mib 256]

Two bundles of random files: one single file, and several files. Every tool reads them once first (so the page
cache is warm for all: this measures hashing, not the disk). Several files are hashed by verify_files on all
cores; sha256sum/openssl are shown sequential (one process) and with `xargs -P <cores>`. Each figure is the
best of --repeat runs (default 3), since the machine may be shared.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from installer.bundle.verify import verify_files  # noqa: E402

MIB = 1024 * 1024
REPEAT = 3


def make_bundle(root: Path, sizes: list[int]) -> list[Path]:
    (root / "files").mkdir(parents=True, exist_ok=True)
    entries, paths = [], []
    for i, size in enumerate(sizes):
        p = root / "files" / f"f{i}.bin"
        h = hashlib.sha256()
        with open(p, "wb") as f:
            left = size
            while left:
                chunk = os.urandom(min(left, 8 * MIB))
                h.update(chunk)
                f.write(chunk)
                left -= len(chunk)
        entries.append({"path": f"files/f{i}.bin", "size": size, "sha256": h.hexdigest()})
        paths.append(p)
    (root / "index.json").write_text(json.dumps({"apiVersion": "medai/v1", "kind": "BundleIndex", "artifacts": [], "files": entries}))
    return paths


def run(cmd: list[str] | str, shell: bool = False) -> float:
    t = time.monotonic()
    subprocess.run(cmd, shell=shell, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - t


def bench(name: str, root: Path, paths: list[Path]) -> None:
    total = sum(p.stat().st_size for p in paths) / MIB
    for p in paths:  # warm the page cache
        with open(p, "rb") as f:
            while f.read(16 * MIB):
                pass
    cores = os.cpu_count() or 2
    names = " ".join(str(p) for p in paths)
    rows = []

    def medai() -> float:
        t = time.monotonic()
        res = verify_files(root)
        assert res.ok, res.problems
        return time.monotonic() - t

    def best(fn) -> float:  # the machine may be shared: best of `repeat` runs
        return min(fn() for _ in range(REPEAT))

    rows.append(("medai verify_files", best(medai)))
    rows.append(("sha256sum", best(lambda: run(["sha256sum", *map(str, paths)]))))
    rows.append(("openssl dgst -sha256", best(lambda: run(["openssl", "dgst", "-sha256", *map(str, paths)]))))
    if len(paths) > 1:
        rows.append(
            (f"sha256sum, xargs -P{cores}", best(lambda: run(f"printf '%s\\n' {names} | xargs -P{cores} -n1 sha256sum", shell=True)))
        )
        rows.append(
            (
                f"openssl, xargs -P{cores}",
                best(lambda: run(f"printf '%s\\n' {names} | xargs -P{cores} -n1 openssl dgst -sha256", shell=True)),
            )
        )
    print(f"\n{name}: {len(paths)} file(s), {total:.0f} MiB, {cores} cores")
    openssl = dict(rows)["openssl dgst -sha256"]
    for label, secs in rows:
        print(f"  {label:28s} {secs:6.2f} s  {total / secs:8.1f} MiB/s   x{openssl / secs:4.2f} of openssl (one process)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--single-mib", type=int, default=1024)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--file-mib", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3, help="report each tool's best of N runs")
    args = ap.parse_args()
    global REPEAT
    REPEAT = max(1, args.repeat)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="medai-bench-verify-"))
    try:
        single = make_bundle(work / "single", [args.single_mib * MIB])
        several = make_bundle(work / "several", [args.file_mib * MIB] * args.files)
        bench("single file", work / "single", single)
        bench("several files", work / "several", several)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
