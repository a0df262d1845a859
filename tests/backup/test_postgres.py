"""PostgreSQL 15 (Debian's, pgaudit loaded) on loopback: rows written, backed up with the exact pg_basebackup
options the in-cluster Job uses, checked by pg_verifybackup, encrypted and decrypted, restored into a fresh data
directory, started, and compared row for row (count and an md5 over every row)."""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from pyrage import x25519

from installer.backup import archive, postgres
from installer.backup.crypto import decrypt_stream, encrypt_stream
from installer.backup.tools import PG_BIN
from installer.core.errors import BackupError
from installer.platform.components import backup_schedules
from tests.support.servers import free_port

pytestmark = [pytest.mark.loopback, pytest.mark.timeout(120), pytest.mark.xdist_group("postgres")]  # one server for both


def _need():
    if not (PG_BIN / "postgres").is_file() or not (PG_BIN.parent / "lib" / "pgaudit.so").is_file():
        pytest.skip("postgresql-15 and postgresql-15-pgaudit are not installed (.ci/setup-host.sh)")


def _as_postgres(argv, **kw):
    pre = ["setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups"] if os.geteuid() == 0 else []
    return subprocess.run([*pre, *argv], check=True, capture_output=True, text=True, **kw)


class Server:
    def __init__(self, data: Path, port: int):
        self.data, self.port = data, port

    def start(self):
        _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-l", str(self.data.parent / f"{self.port}.log"),
                      "-o", f"-p {self.port} -k {self.data.parent} -c listen_addresses=127.0.0.1", "start"])

    def stop(self):
        subprocess.run(["setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups",
                        str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop"], capture_output=True)

    def sql(self, q: str) -> str:
        return subprocess.run([str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                               "-d", "postgres", "-tA", "-c", q], check=True, capture_output=True, text=True,
                              env={"PATH": os.environ["PATH"]}).stdout.strip()


@pytest.fixture(scope="module")
def workdir():
    _need()
    d = Path(tempfile.mkdtemp(prefix="medai-pg-"))
    d.chmod(0o755)
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(d, pw.pw_uid, pw.pw_gid)
    yield d
    shutil.rmtree(d, ignore_errors=True)


ROWS = "SELECT count(*), md5(string_agg(id || ':' || note, ',' ORDER BY id)) FROM patients"


@pytest.fixture(scope="module")
def base_backup(workdir) -> tuple[Path, str]:
    """A server with pgaudit loaded and 5000 rows, backed up with the in-cluster Job's options."""
    data = workdir / "data"
    _as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--data-checksums"])
    with open(data / "postgresql.conf", "a") as f:
        f.write("shared_preload_libraries = 'pgaudit'\npgaudit.log = 'ddl,write'\n")
    src = Server(data, free_port())
    src.start()
    try:
        assert src.sql("SHOW shared_preload_libraries") == "pgaudit"
        src.sql("CREATE TABLE patients (id int primary key, note text)")
        src.sql("INSERT INTO patients SELECT g, md5(g::text) FROM generate_series(1, 5000) g")
        want = src.sql(ROWS)
        backup = postgres.basebackup("127.0.0.1", src.port, "postgres", workdir / "base")
    finally:
        src.stop()
    return backup, want


def test_basebackup_verify_encrypt_restore_and_compare(base_backup, workdir, tmp_path):
    backup, want = base_backup
    assert "--wal-method=stream" in postgres.BASEBACKUP_ARGS
    job = backup_schedules.pg_basebackup_command("main-rw", "/backup/main")
    assert all(a in job for a in postgres.BASEBACKUP_ARGS)  # the in-cluster Job runs the same options
    assert postgres.check_dir(backup, "base")["check"] == "pg_verifybackup"
    ident = x25519.Identity.generate()
    with archive.tar_stream(backup, "pgdata") as tar:  # as backup create packs it: straight into age
        encrypt_stream(tar, tmp_path / "pg.tar.age", [ident.to_public()], "pg.tar")
    with open(tmp_path / "pg.tar.age", "rb") as f:
        plain = decrypt_stream(f, tmp_path / "pg.back.tar", [ident], "pg.tar.age")
    assert postgres.check(plain, "pg.tar.age")["check"] == "pg_verifybackup"
    restored = workdir / "restored"
    postgres.unpack(plain, restored, "pg.tar.age")
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", "postgres:postgres", str(restored)], check=True)
    dst = Server(restored, free_port())
    dst.start()
    try:
        assert dst.sql(ROWS) == want
    finally:
        dst.stop()


def test_a_damaged_base_backup_is_refused_by_pg_verifybackup_naming_it(base_backup, tmp_path):
    damaged = tmp_path / "base"
    shutil.copytree(base_backup[0], damaged)
    victim = damaged / "global" / "pg_control"
    victim.write_bytes(victim.read_bytes()[:-1] + bytes([victim.read_bytes()[-1] ^ 1]))
    packed = archive.pack_dir(damaged, "pgdata", tmp_path / "pg.tar")
    with pytest.raises(BackupError, match=r"pg\.tar: pg_verifybackup failed"):
        postgres.check(packed, "pg.tar")
