"""The backup recipients: checked by `medai inventory check` (one line naming the field), and every operator's
identity alone decrypts what medai encrypted to all of them."""
from __future__ import annotations

import subprocess

import pytest
from pyrage import x25519

from installer.backup.crypto import decrypt_stream, encrypt_stream, parse_recipients
from installer.core.errors import BackupError, InventoryError
from installer.deploy.inventory import load_inventory
from tests.support.medai_cli import medai_argv, medai_env

BASE = """all:
  vars:
    medai_cluster_name: site1
    medai_keycloak_hostname: keycloak.example.internal
    medai_metallb_pool: 10.0.0.200-10.0.0.210
    medai_backup_recipients: {recipients}
  children:
    servers:
      hosts:
        s0: {{ansible_host: 10.0.0.10}}
"""


def test_inventory_check_names_the_field_of_a_bad_recipient(tmp_path, operators):
    good = operators[0].recipient
    inv = tmp_path / "site.yml"
    inv.write_text(BASE.format(recipients=f"[{good}]"))
    assert load_inventory(inv).site.medai_backup_recipients == [good]
    inv.write_text(BASE.format(recipients=f"[{good}, age1notarecipient]"))
    with pytest.raises(InventoryError, match=r"all\.vars\.medai_backup_recipients: 'age1notarecipient' is not an age "
                                             r"X25519 recipient"):
        load_inventory(inv)
    r = subprocess.run(medai_argv("inventory", "check", str(inv)), capture_output=True, text=True,
                       env=medai_env(tmp_path / "home"))
    assert r.returncode == 2
    assert "all.vars.medai_backup_recipients: 'age1notarecipient' is not an age X25519 recipient" in r.stderr


def test_no_recipient_is_refused_naming_the_field():
    with pytest.raises(BackupError, match=r"all\.vars\.medai_backup_recipients: no backup recipients"):
        parse_recipients([])


def test_each_operator_alone_decrypts_and_debian_age_reads_it(tmp_path, operators):
    plain = tmp_path / "plain"
    plain.write_bytes(b"patient data " * 5000)
    enc = tmp_path / "f.age"
    with open(plain, "rb") as src:
        encrypt_stream(src, enc, parse_recipients([o.recipient for o in operators]), "plain")
    assert enc.stat().st_mode & 0o777 == 0o600
    for i, op in enumerate(operators):
        with open(enc, "rb") as f:
            assert decrypt_stream(f, tmp_path / f"back{i}", [op.identity], "f.age").read_bytes() == plain.read_bytes()
        got = subprocess.run(["age", "-d", "-i", str(op.file), str(enc)], capture_output=True, check=True)
        assert got.stdout == plain.read_bytes()
    with open(enc, "rb") as f, pytest.raises(BackupError, match="f.age: does not decrypt"):
        decrypt_stream(f, tmp_path / "no", [x25519.Identity.generate()], "f.age")
    assert not (tmp_path / "no").exists()
