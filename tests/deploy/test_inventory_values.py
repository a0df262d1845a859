"""Inventory values are data: the names that reach a shell in roles/vault are validated by
`medai inventory check` and quoted in the tasks; an alias bomb is refused at once, naming the file."""
from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from installer.core.errors import InventoryError
from installer.deploy.inventory import load_inventory

ROOT = Path(__file__).resolve().parents[2]
MEDAI = ROOT / ".venv" / "bin" / "medai"
BASE = """all:
  vars:
    medai_cluster_name: lab
    medai_keycloak_hostname: keycloak.example.internal
    medai_metallb_pool: 10.0.0.200-10.0.0.210
{extra}  children:
    servers:
      hosts:
        s0: {{ansible_host: 10.0.0.10}}
"""
# inventory-derived names that reach shell:/command: tasks (validated as names by SiteVars, quoted in the tasks)
SHELL_NAMES = ("medai_vault_namespace", "medai_vault_tls_secret")


def _inv(tmp_path, extra: str = "") -> Path:
    p = tmp_path / "site.yml"
    p.write_text(BASE.format(extra=extra))
    return p


def test_defaults_and_valid_names_pass(tmp_path):
    inv = load_inventory(_inv(tmp_path))
    assert inv.site.medai_vault_namespace == "vault" and inv.site.medai_vault_tls_secret == "vault-tls"
    inv = load_inventory(_inv(tmp_path, "    medai_vault_namespace: sec-vault\n    medai_vault_tls_secret: vault.tls-1\n"))
    assert inv.site.medai_vault_tls_secret == "vault.tls-1"


@pytest.mark.parametrize("field,value", [
    ("medai_vault_namespace", "vault; touch /PWNED"),
    ("medai_vault_namespace", "$(id)"),
    ("medai_vault_namespace", "Vault"),
    ("medai_vault_tls_secret", "x`reboot`"),
    ("medai_vault_tls_secret", "a b"),
    ("medai_vault_tls_secret", 12),
])
def test_inventory_check_refuses_what_the_tasks_cannot_carry(tmp_path, field, value):
    p = _inv(tmp_path, f"    {field}: {yaml.safe_dump(value).splitlines()[0]}\n")
    with pytest.raises(InventoryError, match=rf"{p}: all\.vars\.{field}: "):
        load_inventory(p)
    r = subprocess.run([str(MEDAI), "inventory", "check", str(p)], capture_output=True, text=True, timeout=60,
                       env={"PATH": "/usr/bin:/bin", "COLUMNS": "300"})
    assert r.returncode == 2 and f"all.vars.{field}" in r.stderr, r.stderr


def test_alias_bomb_is_refused_in_under_a_second_naming_the_file(tmp_path):
    lines = ['    l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n']
    for i in range(1, 9):
        lines.append(f"    l{i}: &l{i} [{','.join([f'*l{i - 1}'] * 9)}]\n")
    p = _inv(tmp_path, "".join(lines))
    started = time.monotonic()
    with pytest.raises(InventoryError, match=rf"{p}: inventory file expands to \d+ YAML nodes .*alias bomb"):
        load_inventory(p)
    assert time.monotonic() - started < 1.0


def _walk(tasks):
    for t in tasks or []:
        if not isinstance(t, dict):
            continue
        for key in ("block", "rescue", "always"):
            yield from _walk(t.get(key))
        for mod in ("ansible.builtin.shell", "ansible.builtin.command", "shell", "command"):
            body = t.get(mod)
            text = body.get("cmd") if isinstance(body, dict) else body
            if isinstance(text, str):
                yield t.get("name", "?"), text


def _shell_commands():
    """(file, task name, command text) of every shell:/command: task with a string command in the roles."""
    for f in sorted((ROOT / "roles").glob("*/tasks/*.yml")):
        for name, text in _walk(yaml.safe_load(f.read_text())):
            yield f, name, text


def test_every_inventory_name_on_a_command_line_is_quoted():
    seen = 0
    for f, name, text in _shell_commands():
        for expr in re.findall(r"{{(.*?)}}", text):
            if any(re.search(rf"\b{n}\b", expr) for n in SHELL_NAMES):
                seen += 1
                assert re.search(r"\|\s*quote\s*$", expr), f"{f.relative_to(ROOT)}: {name}: {{{{{expr}}}}} is not quoted"
    assert seen >= 3  # roles/vault: namespace (twice) and the TLS secret


def _role_vars(f: Path) -> set[str]:
    """Variables a role defines in vars/main.yml: above the inventory in Ansible's precedence, never site input."""
    vars_file = f.parents[1] / "vars" / "main.yml"
    return set(yaml.safe_load(vars_file.read_text()) or {}) if vars_file.is_file() else set()


def _playbook_commands():
    for f in sorted((ROOT / "playbooks").glob("*.yml")):
        for play in yaml.safe_load(f.read_text()) or []:
            for key in ("pre_tasks", "tasks", "post_tasks", "handlers"):
                for name, text in _walk(play.get(key)):
                    yield f, name, text


SAFE_TAIL = re.compile(r"\|\s*quote\s*$|map\('quote'\)\s*\|\s*join\(' '\)\s*$|map\('int'\)\s*\|\s*join\(' '\)\s*$")


def test_every_template_expression_on_a_shell_or_command_line_is_quoted():
    """Every {{ }} in the string command of a shell:/command: task, in every role and playbook, is shell-quoted (or
    a list of quoted words / integers), unless it names only a role var (vars/main.yml, not settable by a site)."""
    seen = 0
    for f, name, text in [*_shell_commands(), *_playbook_commands()]:
        internal = _role_vars(f) if f.parts[-4] == "roles" else set()
        for expr in re.findall(r"{{(.*?)}}", text):
            seen += 1
            names = set(re.findall(r"\b[a-z_][a-z0-9_]*\b", expr)) - {"quote", "map", "join", "int"}
            assert SAFE_TAIL.search(expr.strip()) or names <= internal, \
                f"{f.relative_to(ROOT)}: {name}: {{{{{expr}}}}} reaches a command line unquoted"
    assert seen >= 20


@pytest.mark.parametrize("where,yaml_value", [
    ("all.vars.medai_egress_table", "\"medai\\nflush ruleset\""),
    ("all.vars.medai_os_chrony_servers[0]", "[\"10.0.0.1\\nserver evil.example\"]"),
    ("all.vars.medai_k3s_harbor_project", "\"platform\\r\\nmirrors: {}\""),
])
def test_inventory_check_refuses_a_control_character_in_any_value(tmp_path, where, yaml_value):
    """Templates write inventory values into config files (nft, chrony, K3s's YAML): one line each, so a value
    cannot start a directive of its own."""
    field = where.split(".")[2].split("[")[0]
    p = _inv(tmp_path, f"    {field}: {yaml_value}\n")
    with pytest.raises(InventoryError, match=rf"{p}: {re.escape(where)}: .* holds a control character"):
        load_inventory(p)
