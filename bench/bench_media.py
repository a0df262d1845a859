"""USB media throughput on a real FAT32 image (mkfs.vfat + fusefat): medai vs the plain tools, as ratios.

    .venv/bin/python bench/bench_media.py [--mib 1024] [--part-mib 256] [--parity 10] [--workdir DIR]

export:  `medai bundle export` (split, fsync, drop cache, read every part back), without recovery data and with
         `--parity` (PAR2 over the parts, read back from the stick)  vs  `cp` of the same file + sync
import:  `medai bundle import` (stream the parts through one hash, write, fsync) of the intact stick, and of the
         same stick with one byte flipped in one part (rebuilt from the recovery data)  vs  `cp` then `sha256sum`;
         and reading the recovery files once (`cat`), the cost the repair is held to
Every side writes onto / reads from its own fresh FAT32 image; the read side is mounted read-only.
On demand only (not in the test suite). Figures depend on the machine and on what else runs on it.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from installer.media.export import ExportOptions, export_bundle  # noqa: E402
from installer.media.manifest import VOLUME_DIR  # noqa: E402
from installer.media.reader import import_media  # noqa: E402
from installer.trust.keys import generate_keypair, load_private_key, load_public_key  # noqa: E402
from tests.support.fat32 import make_image, mounted  # noqa: E402
from tests.support.signed_bundle import make_signed_bundle  # noqa: E402


def timed(fn) -> float:
    t = time.monotonic()
    fn()
    return time.monotonic() - t


def drop_caches() -> None:
    subprocess.run(["sync"], check=True)
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        pass


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=1024, help="size of the one big file (MiB)")
    ap.add_argument("--part-mib", type=int, default=256, help="--max-file-size for the export (MiB)")
    ap.add_argument("--parity", type=float, default=10.0, help="--parity of the second export (%%)")
    ap.add_argument("--workdir", type=Path, default=None)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-media-", dir=a.workdir))
    try:
        key_path, pub_path = generate_keypair(work / "site", b"bench")
        key, pub = load_private_key(key_path, b"bench"), load_public_key(pub_path)
        data = os.urandom(a.mib * 1024 * 1024)
        bundle = make_signed_bundle(work / "bundle", key, {"models/m/shard.safetensors": data})
        del data
        src = bundle.root / "models/m/shard.safetensors"
        img_size = f"{a.mib + 256}M"

        part = a.part_mib * 1024 * 1024

        img = make_image(work / "cp.img", img_size)
        with mounted(img, work / "m-cp") as m:
            drop_caches()
            t_cp = timed(lambda: (shutil.copyfile(src, m / "shard.safetensors"), subprocess.run(["sync"], check=True)))
        img0 = make_image(work / "medai0.img", img_size)
        with mounted(img0, work / "m-medai0") as m:
            drop_caches()
            t_exp0 = timed(lambda: export_bundle(ExportOptions(bundle.root, [m], key, max_file_size=part, parity=0)))
        img2 = make_image(work / "medai.img", img_size)
        with mounted(img2, work / "m-medai") as m:
            drop_caches()
            t_exp = timed(lambda: export_bundle(ExportOptions(bundle.root, [m], key, max_file_size=part,
                                                              parity=a.parity)))
            rec = sorted((m / VOLUME_DIR).glob("medai-parity*.par2"))
            rec_mib = sum(p.stat().st_size for p in rec) / 2 ** 20

        with mounted(img, work / "m-cp", read_only=True) as m:
            drop_caches()
            out = work / "cp-out"
            out.mkdir()
            t_cpsha = timed(lambda: (shutil.copyfile(m / "shard.safetensors", out / "shard.safetensors"),
                                     subprocess.run(["sha256sum", str(out / "shard.safetensors")], check=True, capture_output=True)))
        with mounted(img2, work / "m-medai", read_only=True) as m:
            drop_caches()
            t_imp = timed(lambda: import_media([m], work / "medai-out", pub))
            drop_caches()
            t_par = timed(lambda: subprocess.run(["cat", *map(str, rec)], check=True, stdout=subprocess.DEVNULL))
        with mounted(img2, work / "m-medai") as m:  # one byte flipped in the first part
            victim = m / VOLUME_DIR / "models/m/shard.safetensors.part0000"
            with open(victim, "r+b") as f:
                f.seek(12345)
                b = f.read(1)
                f.seek(12345)
                f.write(bytes([b[0] ^ 1]))
        with mounted(img2, work / "m-medai", read_only=True) as m:
            drop_caches()
            res = {}
            t_rep = timed(lambda: res.update(r=import_media([m], work / "medai-out2", pub)))
            assert res["r"].repaired, "the damaged part was not rebuilt"

        mib = a.mib
        print(f"file: {mib} MiB, parts of {a.part_mib} MiB, real FAT32 via fusefat; recovery data {rec_mib:.1f} MiB "
              f"(--parity {a.parity:g})")
        print(f"export  medai --parity 0   {t_exp0:7.2f} s ({mib / t_exp0:6.1f} MiB/s)   cp+sync        {t_cp:7.2f} s   "
              f"ratio {t_exp0 / t_cp:.2f}  (medai also reads every part back)")
        print(f"export  medai --parity {a.parity:<3g} {t_exp:7.2f} s ({mib / t_exp:6.1f} MiB/s)   cp+sync        {t_cp:7.2f} s   "
              f"ratio {t_exp / t_cp:.2f}; vs --parity 0: {t_exp / t_exp0:.2f} (goal <= 1.3)")
        print(f"import  medai intact       {t_imp:7.2f} s ({mib / t_imp:6.1f} MiB/s)   cp+sha256sum   {t_cpsha:7.2f} s   "
              f"ratio {t_imp / t_cpsha:.2f}")
        print(f"import  medai 1 damaged    {t_rep:7.2f} s ({mib / t_rep:6.1f} MiB/s)   cp+sha256sum   {t_cpsha:7.2f} s   "
              f"ratio {t_rep / t_cpsha:.2f}; the repair took {t_rep - t_imp:.2f} s, reading the recovery files once "
              f"{t_par:.2f} s (goal: repair <= that)")
    finally:
        for m in work.glob("m-*"):
            subprocess.run(["fusermount", "-u", str(m)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
