"""The CLI asks for the operator's yes before a command changes the site, and passes it into the library: a "no"
stops the command before anything is touched (no run record, no state lock), and --stdin (the unseal shares'
channel) cannot also carry the answer. Run as the operator runs medai: the real entry point in a child process."""
from __future__ import annotations

import subprocess

from tests.support.medai_cli import ROOT, medai_argv, medai_env

INVENTORY = ROOT / "inventories" / "example" / "site.yml"


def _medai(home, *args, answer: str = ""):
    return subprocess.run(medai_argv(*args), input=answer, capture_output=True, text=True, cwd=ROOT,
                          env=medai_env(home), timeout=120)


def test_certs_rotate_asks_first_and_a_no_touches_nothing(tmp_path):
    home = tmp_path / "home"
    r = _medai(home, "certs", "rotate", "--inventory", str(INVENTORY), "--group", "k3s", answer="n\n")
    assert r.returncode == 1 and "Aborted" in r.stderr, r.stdout + r.stderr
    assert ("Rotate the k3s certificates of cluster radiology-prod? K3s's certificates are renewed and K3s restarts "
            "on each node in turn.") in r.stdout
    assert not (home / "runs").exists()  # no run record was opened: the question comes first


def test_stdin_shares_need_yes_and_vault_rotate_cert_asks_the_same(tmp_path):
    home = tmp_path / "home"
    r = _medai(home, "vault", "rotate-cert", "keycloak", "--inventory", str(INVENTORY), "--stdin", answer="share\n")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "error: --stdin reads the unseal shares from stdin, which cannot answer the confirmation too: pass --yes " \
           "as well" in " ".join(r.stderr.split())
    assert not (home / "runs").exists()


def test_backup_restore_asks_before_replacing_etcd_and_not_for_an_unpack(tmp_path):
    home, missing = tmp_path / "home", tmp_path / "missing"
    common = ("--inventory", str(INVENTORY), "--key", str(missing / "site.pub"), "--identity", str(missing / "id"))
    r = _medai(home, "backup", "restore", str(missing / "stick"), "--component", "etcd", *common, answer="n\n")
    assert r.returncode == 1 and "Aborted" in r.stderr, r.stdout + r.stderr
    assert "K3s's datastore is replaced by the snapshot." in r.stdout
    r = _medai(home, "backup", "restore", str(missing / "stick"), "--component", "site", *common)
    assert "replaced" not in r.stdout and r.returncode == 2  # not asked: straight to the missing key's error
    assert "site.pub" in r.stderr, r.stderr
