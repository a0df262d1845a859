"""`medai backup verify` as the operator runs it: --json on success; a set signed by another key and a wrong
identity are one `error:` line naming the file, exit 2."""
from __future__ import annotations

import json
import subprocess

from installer.backup import media
from installer.trust.keys import public_key_pem
from tests.backup.conftest import Operator, new_key, stage_set
from tests.support.medai_cli import medai_argv, medai_env


def test_verify_cli(tmp_path, site_key, operators):
    staging, _ = stage_set(tmp_path / "a", site_key, operators)
    stick = tmp_path / "stick"
    stick.mkdir()
    media.write(staging, [stick], site_key, percent=0)
    pub = tmp_path / "site.pub"
    pub.write_bytes(public_key_pem(site_key.public))
    env = medai_env(tmp_path / "home")

    def run(*args):
        return subprocess.run(medai_argv("backup", "verify", str(stick), *args), capture_output=True, text=True,
                              env=env)

    r = run("--key", str(pub), "--identity", str(operators[0].file), "--json")
    assert r.returncode == 0, r.stderr
    assert set(json.loads(r.stdout)["components"]) == {"site", "longhorn"}
    other = tmp_path / "other.pub"
    other.write_bytes(public_key_pem(new_key().public))
    r = run("--key", str(other))
    assert r.returncode == 2 and r.stderr.count("error:") == 1 and "medai-bundle/index.json" in r.stderr
    r = run("--key", str(pub), "--identity", str(Operator(tmp_path, "mallory").file))
    assert r.returncode == 2 and "backupstore.tar.age: does not decrypt" in r.stderr.replace("\n", "")
