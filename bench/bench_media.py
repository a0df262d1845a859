"""USB media throughput on a real FAT32 image (mkfs.vfat + fusefat): medai vs the plain tools, as ratios.

    .venv/bin/python bench/bench_media.py [--mib 1024] [--part-mib 256] [--workdir DIR]

export:  `medai bundle export` (split, fsync, drop cache, read every part back)  vs  `cp` of the same file + sync
import:  `medai bundle import` (stream the parts through one hash, write, fsync)  vs  `cp` then `sha256sum`
Both sides write onto / read from the same fresh FAT32 image per round; the read side is mounted read-only.
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

        img = make_image(work / "cp.img", img_size)
        with mounted(img, work / "m-cp") as m:
            drop_caches()
            t_cp = timed(lambda: (shutil.copyfile(src, m / "shard.safetensors"), subprocess.run(["sync"], check=True)))
        img2 = make_image(work / "medai.img", img_size)
        with mounted(img2, work / "m-medai") as m:
            drop_caches()
            t_exp = timed(lambda: export_bundle(ExportOptions(bundle.root, [m], key, max_file_size=a.part_mib * 1024 * 1024)))

        with mounted(img, work / "m-cp", read_only=True) as m:
            drop_caches()
            out = work / "cp-out"
            out.mkdir()
            t_cpsha = timed(lambda: (shutil.copyfile(m / "shard.safetensors", out / "shard.safetensors"),
                                     subprocess.run(["sha256sum", str(out / "shard.safetensors")], check=True, capture_output=True)))
        with mounted(img2, work / "m-medai", read_only=True) as m:
            drop_caches()
            t_imp = timed(lambda: import_media([m], work / "medai-out", pub))

        mib = a.mib
        print(f"file: {mib} MiB, parts of {a.part_mib} MiB, real FAT32 via fusefat")
        print(f"export  medai {t_exp:7.2f} s ({mib / t_exp:6.1f} MiB/s)   cp+sync        {t_cp:7.2f} s ({mib / t_cp:6.1f} MiB/s)   "
              f"ratio medai/cp = {t_exp / t_cp:.2f}  (medai also reads every part back)")
        print(f"import  medai {t_imp:7.2f} s ({mib / t_imp:6.1f} MiB/s)   cp+sha256sum   {t_cpsha:7.2f} s ({mib / t_cpsha:6.1f} MiB/s)   "
              f"ratio medai/(cp+sha256sum) = {t_imp / t_cpsha:.2f}")
    finally:
        for m in work.glob("m-*"):
            subprocess.run(["fusermount", "-u", str(m)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
