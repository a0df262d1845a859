"""The whole `medai bundle build --no-tools --sign-key` (images, SBOMs, signing) against `skopeo copy --all` of the
same images, and the no-change rebuild of the whole command (as given, and with --locked) as a share of the first;
one run, ratios printed.

    .venv/bin/python bench/bench_build.py [--workdir DIR] [--big-mib 1024] [--rounds 2] [--keep]

Images as in bench_collect.py (random, uncompressed tar layers, pushed by skopeo to a loopback docker-registry):
    bench/big:1.0      one BIG layer (default 1 GiB) + a small layer
    bench/svc-N:1.0    a shared 128 MiB base layer + a unique 64 MiB layer, N = 1..3
Every medai figure is a subprocess of the CLI (interpreter start-up and imports included), as a user runs it.
The tools alternate (--rounds), each into a fresh directory after `sync`; each one's best round is reported.
The no-change rebuild runs the same command again over the last finished bundle (the up-to-date check answers,
asking the registry for each tag's digest, with or without --locked, as the full build does; --locked's first
run is a full build). Peak RSS is the child's ru_maxrss (an upper bound: Linux carries it across execve from this small parent).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_collect import du, timed  # noqa: E402
from tests.support.images import skopeo_push, write_big_image  # noqa: E402
from tests.support.servers import run_registry  # noqa: E402

MIB = 1024 * 1024
PASSWORD = "bench-password"


PROFILE: list[str] = []  # --profile DIR: each medai run under cProfile (slower; for finding where time goes)


def medai_cmd(*args: str) -> list[str]:
    prof = ["-m", "cProfile", "-o", f"{PROFILE[0]}/medai-{len(os.listdir(PROFILE[0]))}.prof"] if PROFILE else []
    return [sys.executable, *prof, "-m", "installer.cli.main", *args]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--big-mib", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--profile", default=None)
    args = ap.parse_args()
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
        PROFILE.append(args.profile)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="medai-bench-build-"))
    work.mkdir(parents=True, exist_ok=True)
    # a fresh SBOM layer-facts cache: the first build must gather them, not find them from an earlier bench
    env = {**os.environ, "MEDAI_KEY_PASSWORD": PASSWORD, "MEDAI_CACHE": str(work / "cache")}
    os.environ.update(env)  # timed() passes the environment on
    # An installed medai runs from cached bytecode; a session that sets PYTHONDONTWRITEBYTECODE would make every
    # run compile medai's modules again (~0.1 s of each start-up here), which no user pays.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    try:
        from installer.trust.keys import generate_keypair

        (work / "keys").mkdir(exist_ok=True)
        key, _pub = generate_keypair(work / "keys" / "site", PASSWORD.encode())
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
            manifest = work / "bench.yaml"
            manifest.write_text(yaml.safe_dump({
                "apiVersion": "medai/v1", "kind": "Bundle", "metadata": {"name": "bench", "version": "1.0.0"},
                "spec": {"platforms": ["linux/amd64"], "images": [{"ref": r} for r in refs]}}, sort_keys=False))
            print(f"prepared {len(refs)} images in the registry in {time.monotonic() - t:.1f}s")

            build = lambda out: medai_cmd("bundle", "build", str(manifest), "--out", str(out), "--no-tools",  # noqa: E731
                                          "--sign-key", str(key), "--json")
            os.sync()
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
                out = work / f"medai-{rnd}"
                medai_runs.append(timed(build(out))[:2])
                os.sync()
                print(f"round {rnd + 1}: medai bundle build {medai_runs[-1][0]:.2f} s, skopeo {s_wall:.2f} s")
                if rnd + 1 < args.rounds:
                    shutil.rmtree(sk_dir)
                    shutil.rmtree(out)
            reruns = [timed(build(out))[0] for _ in range(3)]
            # --locked is another command line: its first run is a full build (and stamps it), then best of 3
            locked_full = timed(build(out) + ["--locked"])[0]
            locked_reruns = [timed(build(out) + ["--locked"])[0] for _ in range(3)]
            help_wall = min(timed(medai_cmd("--help"))[0] for _ in range(3))
        m_wall = min(w for w, _ in medai_runs)
        m_rss = max(r for _, r in medai_runs)
        s_wall = min(w for w, _ in skopeo_runs)
        r_wall = min(reruns)
        size = du(out / "oci")
        print(f"images: {len(refs)}, unique bytes in the layout: {size / MIB:.0f} MiB (skopeo's: {du(sk_dir) / MIB:.0f} MiB)")
        print(f"medai bundle build --no-tools --sign-key: {m_wall:7.2f} s  peak RSS <= {m_rss / MIB:6.1f} MiB")
        print(f"skopeo copy --all (4 processes):          {s_wall:7.2f} s")
        print(f"ratio build/skopeo time: {m_wall / s_wall:.2f}  (goal <= 1.0)")
        print(f"no-change rebuild (whole command, best of 3): {r_wall:.2f} s = {100 * r_wall / m_wall:.1f}% of the first "
              f"(goal < 5%); `medai --help` alone: {help_wall:.2f} s = {100 * help_wall / m_wall:.1f}%")
        l_wall = min(locked_reruns)
        print(f"no-change rebuild with --locked (best of 3): {l_wall:.2f} s = {100 * l_wall / m_wall:.1f}% of the first "
              f"(its first run, a full build: {locked_full:.2f} s)")
        print(f"peak RSS goal < 256 MiB with a {args.big_mib} MiB blob: {'met' if m_rss < 256 * MIB else 'MISSED'}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
