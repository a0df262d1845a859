"""Collect >= 1 GiB of images (with shared layers) from a local registry: medai vs `skopeo copy --all`.

    .venv/bin/python bench/bench_collect.py [--workdir DIR] [--big-mib 1024] [--keep]

Images (random, incompressible, uncompressed tar layers so neither tool spends time on gzip):
    bench/big:1.0      one BIG layer (default 1 GiB) + a small layer   -> peak-RSS check with a 1 GiB blob
    bench/svc-N:1.0    a shared 128 MiB base layer + a unique 64 MiB layer, N = 1..3
Both tools pull the same images from the same loopback docker-registry into an OCI layout; medai runs in a
subprocess so its peak RSS (VmHWM, the worst of its rounds) is its own. A second medai run over the finished layout measures the
no-change rebuild. The tools alternate (--rounds, default 2), each into a fresh layout after `sync`, and each
one's best round is reported. Figures depend on the machine and on what else runs on it.
"""
from __future__ import annotations

import argparse
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

from tests.support.images import skopeo_push, write_big_image  # noqa: E402
from tests.support.servers import run_registry  # noqa: E402

MIB = 1024 * 1024

MEDAI = """
import json, re, sys, time
from installer.oci.images import collect_images
from installer.oci.layout import OCILayout
from installer.oci.registry import RegistryClient
t = time.monotonic()
with RegistryClient() as c:
    got = collect_images(c, OCILayout(sys.argv[1]), sys.argv[2:], ["linux/amd64"])
    hwm = int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) * 1024
    print(json.dumps({"seconds": time.monotonic() - t, "peak_rss": hwm, "blob_bytes": c.stats.blob_bytes,
                      "fetched": sum(g.fetched_bytes for g in got), "reused": sum(g.reused_bytes for g in got)}))
"""


def timed(cmd: list[str]) -> tuple[float, int, str]:
    """(wall seconds, peak RSS bytes, stdout) of a child process.

    Peak RSS is the child's ru_maxrss; medai's own figure comes from its VmHWM (printed as peak_rss), because
    Linux carries ru_maxrss across execve from the parent that spawned the child."""
    t = time.monotonic()
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd[0]} failed: {err.decode()[-2000:]}")
    return wall, ru.ru_maxrss * 1024, out.decode()


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--big-mib", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="medai-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        with run_registry(work / "registry") as reg:
            src = work / "src"
            t = time.monotonic()
            write_big_image(src, "big", [(args.big_mib * MIB, 1), (4 * MIB, 2)])
            for n in range(1, 4):
                write_big_image(src, f"svc-{n}", [(128 * MIB, 100), (64 * MIB, 100 + n)])
            refs = []
            for tag in ["big"] + [f"svc-{n}" for n in range(1, 4)]:
                ref = f"{reg.host}/bench/{tag}:1.0"
                skopeo_push(src, tag, ref)
                refs.append(ref)
            shutil.rmtree(src)
            print(f"prepared {len(refs)} images in the registry in {time.monotonic() - t:.1f}s")

            os.sync()
            # Alternate the tools, each into a fresh layout, and keep each one's best run: the machine is shared.
            medai_runs, skopeo_runs = [], []
            for rnd in range(args.rounds):
                sk_dir = work / f"skopeo-{rnd}"
                s_wall, s_rss = 0.0, 0
                for ref in refs:
                    w, rss, _ = timed(["skopeo", "copy", "--quiet", "--all", "--src-tls-verify=false",
                                       "--dest-oci-accept-uncompressed-layers", f"docker://{ref}", f"oci:{sk_dir}:{ref}"])
                    s_wall += w
                    s_rss = max(s_rss, rss)
                skopeo_runs.append((s_wall, s_rss))
                os.sync()
                medai_dir = work / f"medai-{rnd}" / "oci"
                medai_runs.append(timed([sys.executable, "-c", MEDAI, str(medai_dir), *refs]))
                os.sync()
                print(f"round {rnd + 1}: medai {medai_runs[-1][0]:.2f} s, skopeo {s_wall:.2f} s")
                if rnd + 1 < args.rounds:
                    shutil.rmtree(sk_dir)
                    shutil.rmtree(medai_dir.parent)
            r_wall, r_rss, r_out = timed([sys.executable, "-c", MEDAI, str(medai_dir), *refs])
            m_wall, _, m_out = min(medai_runs)
            m_rss = max(json.loads(out)["peak_rss"] for _, _, out in medai_runs)
            s_wall, s_rss = min(skopeo_runs)

        size = du(medai_dir)
        print(f"images: {len(refs)}, unique bytes in the layout: {size / MIB:.0f} MiB (skopeo's layout: {du(sk_dir) / MIB:.0f} MiB)")
        print(f"medai collect:     {m_wall:7.2f} s  {size / MIB / m_wall:7.1f} MiB/s  peak RSS {m_rss / MIB:6.1f} MiB   {m_out.strip()}")
        print(
            f"skopeo copy --all: {s_wall:7.2f} s  {size / MIB / s_wall:7.1f} MiB/s  peak RSS {s_rss / MIB:6.1f} MiB "
            f"(largest of its {len(refs)} processes)"
        )
        print(f"ratio medai/skopeo time: {m_wall / s_wall:.2f}  (goal <= 1.0)")
        r_in = json.loads(r_out)["seconds"]
        m_in = json.loads(m_out)["seconds"]
        print(
            f"no-change rerun:   {r_in:7.2f} s in collect_images = {100 * r_in / m_in:.1f}% of the first run's (goal < 5%); "
            f"{r_wall:.2f} s = {100 * r_wall / m_wall:.1f}% with interpreter start-up and imports   {r_out.strip()}"
        )
        print(f"peak RSS goal < 256 MiB with a {args.big_mib} MiB blob: {'met' if m_rss < 256 * MIB else 'MISSED'}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
