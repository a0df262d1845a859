"""Run from a bundle (bootstrap.py sets MEDAI_ANSIBLE_DIR): a command that verified no bundle itself (reset,
verify without --key) runs the playbooks of the installed bundle's verified copy, never the stick's."""
from __future__ import annotations

import json

import pytest
from rich.console import Console

from installer.core.errors import InstallError
from installer.deploy.runner import run_playbook
from installer.deploy.state import installed_copy, new_run


def test_no_installed_copy_refuses_before_any_playbook_runs(tmp_path, monkeypatch):
    stick = tmp_path / "stick" / "tools" / "ansible"
    (stick / "playbooks").mkdir(parents=True)
    (stick / "playbooks" / "reset.yml").write_text("- hosts: all\n  tasks: [{ansible.builtin.command: 'touch /tmp/owned'}]\n")
    monkeypatch.setenv("MEDAI_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MEDAI_ANSIBLE_DIR", str(stick))
    inv = tmp_path / "site.yml"
    inv.write_text("all: {}\n")
    record = new_run("reset", inv)
    with pytest.raises(InstallError, match="no verified copy of an installed bundle.*not run unchecked"):
        run_playbook(record, "reset.yml", inv, {}, {}, console=Console(file=open("/dev/null", "w")))
    assert not (record.runner_dir / "artifacts").exists()


def test_the_installed_bundles_verified_copy_is_found_from_the_run_records(tmp_path):
    home = tmp_path / "home"
    inv = tmp_path / "site.yml"
    inv.write_text("all: {}\n")
    digest = "ab" * 32
    copy = home / "bundles" / digest[:32]
    copy.mkdir(parents=True)
    (copy / "index.json").write_text("{}")
    assert installed_copy(inv, home) is None  # nothing installed yet
    rec = new_run("install", inv, home=home)
    rec.data["bundleIndexSha256"] = digest
    rec.finish("successful")
    assert json.loads((rec.dir / "run.json").read_text())["bundleIndexSha256"] == digest
    assert installed_copy(inv, home) == copy
