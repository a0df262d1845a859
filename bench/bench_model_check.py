"""The weight check (installer/trust/model_check.py, the init container's checker) vs `sha256sum`, same files.

    .venv/bin/python bench/bench_model_check.py [--workdir DIR] [--shards 3] [--shard-mib 1024] [--sparse]
        [--workers N] [--repeat 2] [--cold]

Writes a model-shaped directory (N safetensors shards plus small files; random data, or sparse files with
--sparse, which measure hashing with no disk at all), and an index listing their sha256. Then, in ONE run,
times model_check.check_model_dir (parallel, streamed) and `sha256sum` over the same files, sequentially and
with `xargs -P <workers>`, and prints the ratios. With --cold it drops the page cache before each timing
(root only: `echo 3 > /proc/sys/vm/drop_caches`) so the figure includes the disk's read time; otherwise the
files are read once first and the figures are hashing throughput. Best of --repeat.
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

from installer.trust.model_check import check_model_dir, default_workers  # noqa: E402

MIB = 1 << 20


def make_model(d: Path, shards: int, shard_mib: int, sparse: bool) -> tuple[dict, list[Path]]:
    m = d / "models" / "bench-model"
    m.mkdir(parents=True)
    files = {f"model-{i + 1:05d}-of-{shards:05d}.safetensors": shard_mib * MIB for i in range(shards)}
    paths, entries = [], []
    for name, size in files.items():
        p = m / name
        h = hashlib.sha256()
        with open(p, "wb") as f:
            if sparse:
                f.truncate(size)
                zero = bytes(4 * MIB)
                for _ in range(size // len(zero)):
                    h.update(zero)
            else:
                left = size
                while left:
                    chunk = os.urandom(min(left, 4 * MIB))
                    f.write(chunk)
                    h.update(chunk)
                    left -= len(chunk)
        paths.append(p)
        entries.append({"path": f"models/bench-model/{name}", "size": size, "sha256": h.hexdigest()})
    for name, text in (("config.json", "{}\n"), ("tokenizer.json", '{"v": 1}\n')):
        (m / name).write_text(text)
        paths.append(m / name)
        entries.append({"path": f"models/bench-model/{name}", "size": len(text),
                        "sha256": hashlib.sha256(text.encode()).hexdigest()})
    index = {"artifacts": [{"kind": "model", "name": "bench-model", "path": "models/bench-model",
                            "paths": [e["path"] for e in entries]}], "files": entries}
    return index, paths


def drop_caches() -> None:
    subprocess.run(["sync"], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def timed(fn, repeat: int, cold: bool) -> float:
    best = float("inf")
    for _ in range(repeat):
        if cold:
            drop_caches()
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--shards", type=int, default=3)
    ap.add_argument("--shard-mib", type=int, default=1024)
    ap.add_argument("--sparse", action="store_true", help="sparse files: hashing only, no disk reads")
    ap.add_argument("--workers", type=int, default=default_workers())
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--cold", action="store_true", help="drop the page cache before each timing (root)")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="medai-bench-model-", dir=a.workdir))
    try:
        index, paths = make_model(work, a.shards, a.shard_mib, a.sparse)
        total = sum(p.stat().st_size for p in paths)
        root = work / "models" / "bench-model"
        if not a.cold:
            for p in paths:  # warm the page cache for every contender alike
                with open(p, "rb") as f:
                    while f.read(16 * MIB):
                        pass

        def medai():
            files, nbytes, problems = check_model_dir(index, "bench-model", root, a.workers)
            assert not problems and nbytes == total, problems

        def seq():
            subprocess.run(["sha256sum", *map(str, paths)], check=True, capture_output=True)

        def par():
            subprocess.run(["xargs", "-0", f"-P{a.workers}", "-n1", "sha256sum"], input=b"\0".join(str(p).encode() for p in paths),
                           check=True, capture_output=True)

        t_medai = timed(medai, a.repeat, a.cold)
        t_seq = timed(seq, a.repeat, a.cold)
        t_par = timed(par, a.repeat, a.cold)
        gib = total / (1 << 30)
        out = {
            "files": len(paths), "GiB": round(gib, 2), "sparse": a.sparse, "cold": a.cold, "workers": a.workers,
            "cores": len(os.sched_getaffinity(0)),
            "model_check_s": round(t_medai, 2), "sha256sum_seq_s": round(t_seq, 2), f"sha256sum_xargs_P{a.workers}_s": round(t_par, 2),
            "model_check_GiB_s": round(gib / t_medai, 2),
            "ratio_vs_sha256sum_seq": round(t_seq / t_medai, 2),
            "ratio_vs_sha256sum_parallel": round(t_par / t_medai, 2),
        }
        print(json.dumps(out, indent=1))
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
