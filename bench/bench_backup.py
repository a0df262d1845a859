"""A PostgreSQL backup onto a real FAT32 image (mkfs.vfat + fusefat): medai's path vs the plain tools, as a ratio.

    .venv/bin/python bench/bench_backup.py [--mib 2048] [--parity 0] [--workdir DIR]

Data: a real PostgreSQL 15 (Debian's, pgaudit loaded) on loopback, filled to about --mib MiB of table data.
medai:    pg_basebackup with the in-cluster Job's options (BASEBACKUP_ARGS) -> one tar -> pg_verifybackup ->
          age encryption to two recipients (pyrage, streamed) -> the signed set onto the stick through the media
          layer (parts, fsync, drop cache, every part read back, media.json signed)
baseline: `pg_basebackup -Ft -X fetch --checkpoint=fast -D - | age -r R -r R > file` then `cp file STICK/ && sync`
Each side writes onto its own fresh FAT32 image. Goal: ratio <= 1.3. On demand only (not in the test suite).
"""
from __future__ import annotations

import argparse
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from pyrage import x25519  # noqa: E402

from installer.backup import archive, media, postgres  # noqa: E402
from installer.backup.backupset import SetWriter  # noqa: E402
from installer.backup.tools import PG_BIN  # noqa: E402
from installer.trust.keys import SigningKey  # noqa: E402
from tests.support.fat32 import make_image, mounted  # noqa: E402
from tests.support.servers import free_port  # noqa: E402


def as_postgres(argv: list[str]) -> None:
    pre = ["setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups"] if os.geteuid() == 0 else []
    subprocess.run([*pre, *argv], check=True, capture_output=True)


def psql(port: int, sql: str) -> str:
    return subprocess.run([str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-tA", "-c", sql],
                          check=True, capture_output=True, text=True).stdout.strip()


def start_filled(work: Path, mib: int) -> tuple[Path, int]:
    data = work / "data"
    as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"])
    with open(data / "postgresql.conf", "a") as f:
        f.write("shared_preload_libraries = 'pgaudit'\nmax_wal_size = 4GB\n")
    port = free_port()
    as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-w", "-l", str(work / "pg.log"), "-o",
                 f"-p {port} -k {work} -c listen_addresses=127.0.0.1", "start"])
    psql(port, "CREATE TABLE t (id bigint, payload text)")
    rows = mib * 1024 * 1024 // 300  # incompressible-ish payload: 256 hex chars + tuple overhead
    step = 200_000
    for lo in range(0, rows, step):
        psql(port, f"INSERT INTO t SELECT g, repeat(md5(random()::text), 8) FROM generate_series({lo}, "
                   f"{min(rows, lo + step) - 1}) g")
    return data, port


def timed(fn) -> float:
    t = time.monotonic()
    fn()
    return time.monotonic() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=2048, help="table data to back up (MiB)")
    ap.add_argument("--parity", type=float, default=0.0, help="--parity of medai's write (%%)")
    ap.add_argument("--workdir", type=Path, default=None)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-backup-", dir=a.workdir or "/tmp"))
    work.chmod(0o755)
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(work, pw.pw_uid, pw.pw_gid)
    data, port = start_filled(work, a.mib)
    try:
        size = int(psql(port, "SELECT pg_database_size('postgres')"))
        key = SigningKey(ec.generate_private_key(ec.SECP256R1()), "bench")
        ids = [x25519.Identity.generate() for _ in range(2)]
        recips = [str(i.to_public()) for i in ids]
        image_size = f"{max(256, int(size * 1.4) // 2 ** 20 + 128)}M"

        stages: dict[str, float] = {}

        def medai_side() -> None:
            (work / "m").mkdir()
            base = work / "m" / "base"
            stages["pg_basebackup"] = timed(lambda: postgres.basebackup("127.0.0.1", port, "postgres", base))
            stages["pg_verifybackup"] = timed(lambda: postgres.check_dir(base, "base"))
            w = SetWriter.start(work / "m" / "staging", "bench", recips, [x25519.Recipient.from_str(r) for r in recips])

            def encrypt() -> None:
                with archive.tar_stream(base, "pgdata") as tar:  # as backup create does
                    w.add_stream("postgresql", "postgresql/main-db.tar", tar)
                w.finish(key)
            stages["tar | age"] = timed(encrypt)
            shutil.rmtree(base)
            img = make_image(work / "medai.img", image_size)
            with mounted(img, work / "mnt-m"):
                stages["media write + read back"] = timed(
                    lambda: media.write(work / "m" / "staging", [work / "mnt-m"], key, percent=a.parity))

        def plain_side() -> None:
            out = work / "plain.tar.age"
            with open(out, "wb") as f:
                pg = subprocess.Popen([str(PG_BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(port), "-U",
                                       "postgres", "-Ft", "-X", "fetch", "--checkpoint=fast", "-D", "-"], stdout=subprocess.PIPE)
                age = subprocess.run(["age", *sum((["-r", r] for r in recips), [])], stdin=pg.stdout, stdout=f,
                                     check=True)
                pg.stdout.close()
                assert pg.wait() == 0 and age.returncode == 0
            img = make_image(work / "plain.img", image_size)
            with mounted(img, work / "mnt-p"):
                subprocess.run(["cp", str(out), str(work / "mnt-p")], check=True)
                subprocess.run(["sync"], check=True)

        t_plain = timed(plain_side)
        t_medai = timed(medai_side)
        print(f"data: {size / 2 ** 20:.0f} MiB database (asked {a.mib} MiB of table data)")
        print(f"baseline pg_basebackup | age > file + cp + sync : {t_plain:7.1f} s")
        print(f"medai (basebackup, verify, encrypt, signed set, read back): {t_medai:7.1f} s")
        print("  " + ", ".join(f"{k} {v:.1f} s" for k, v in stages.items()))
        print(f"ratio medai / baseline: {t_medai / t_plain:.2f} (goal <= 1.3)")
    finally:
        subprocess.run(["setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups", str(PG_BIN / "pg_ctl"),
                        "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
