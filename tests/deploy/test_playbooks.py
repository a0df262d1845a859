"""Static checks of the deploy playbooks and roles: they parse, and every default is documented."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TASK_KEYWORDS = {"name", "tags", "when", "vars", "loop", "loop_control", "register", "changed_when", "failed_when",
                 "check_mode", "args", "no_log", "diff", "notify", "listen", "environment", "delegate_to", "run_once",
                 "until", "retries", "delay", "become", "become_user", "ignore_errors", "delegate_facts", "timeout",
                 "throttle", "any_errors_fatal", "module_defaults", "with_items", "with_dict"}


def test_playbooks_parse_with_all_roles():
    env = dict(os.environ, ANSIBLE_ROLES_PATH=str(ROOT / "roles"))
    r = subprocess.run(["ansible-playbook", "--syntax-check", "-i", str(ROOT / "inventories/example/site.yml"),
                        *sorted(str(p) for p in (ROOT / "playbooks").glob("*.yml"))],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_site_order_and_serial_servers():
    plays = yaml.safe_load((ROOT / "playbooks/site.yml").read_text())
    roles = [p["roles"][0]["role"] for p in plays if p.get("roles")]
    assert roles == ["preflight", "os", "egress", "stage", "k3s", "gpu", "k3s", "vault", "hardening", "compliance", "egress"]
    servers = next(p for p in plays if p.get("hosts") == "servers")
    assert servers["serial"] == 1 and servers["roles"][0]["tags"] == ["k3s"]


ROLE_DIRS = sorted(p for p in (ROOT / "roles").iterdir() if p.is_dir())
# Roles whose every top-level task in tasks/main.yml carries the role's name as a tag and uses an ansible.builtin
# module (the node-level roles). The platform roles apply charts through kubernetes.core, and hardening tags by rule id.
BUILTIN_TAGGED = ["preflight", "stage", "k3s", "cilium", "metallb", "egress"]
# Variables a role documents that are not prefixed medai_<role>_, each with the reason.
PREFIX_EXCEPTIONS = {
    ("preflight", "medai_stage_files"): "preflight sizes the stage role's file list (set by medai install) before staging",
    ("inference", "medai_compliance_fetch_dir"): "weight_check fetches into the compliance evidence directory medai verify sets",
}
# A variable is a secret when its argument spec says no_log, or by its name (values, never Secret *names*).
SECRET_NAME = re.compile(r"\bmedai_\w*?_(?:token|password|passwords|tls_key|secrets)\b")
NAME_STYLE = re.compile(r"^(?P<label>[A-Z][A-Za-z0-9]*(?: [a-z][A-Za-z0-9]*)*) \| \S")


def _yaml(path: Path):
    return yaml.safe_load(path.read_text())


def _role_tasks(base: Path):
    """Every task and handler of a role, blocks walked, as (file, task, no_log inherited from enclosing blocks)."""
    def walk(tasks, f, inherited):
        for t in tasks or []:
            no_log = t.get("no_log", inherited)
            yield f, t, no_log
            for key in ("block", "rescue", "always"):
                yield from walk(t.get(key), f, no_log)
    for sub in ("tasks", "handlers"):
        for f in sorted((base / sub).glob("*.yml")) if (base / sub).is_dir() else []:
            yield from walk(_yaml(f), f.relative_to(ROOT), None)


def _leaf(t: dict) -> dict:
    return {k: v for k, v in t.items() if k not in ("block", "rescue", "always")}


def _specs(base: Path) -> dict:
    specs = _yaml(base / "meta/argument_specs.yml")["argument_specs"]
    opts = {}
    for entry in specs.values():  # main plus any tasks_from entry point (e.g. inference's weight_check)
        opts.update(entry.get("options") or {})
    return opts


def test_every_role_is_walked():
    assert {p.name for p in ROLE_DIRS} >= set(BUILTIN_TAGGED) | {"os", "vault", "harbor", "keycloak", "postgres"}


@pytest.mark.parametrize("base", ROLE_DIRS, ids=lambda p: p.name)
def test_role_defaults_documented_and_prefixed(base):
    role = base.name
    assert (base / "meta/argument_specs.yml").is_file(), f"{role}: meta/argument_specs.yml is missing"
    spec = _specs(base)
    defaults = (_yaml(base / "defaults/main.yml") or {}) if (base / "defaults/main.yml").is_file() else {}
    assert set(defaults) <= set(spec), f"{role}: undocumented in meta/argument_specs.yml: {sorted(set(defaults) - set(spec))}"
    for name, opt in spec.items():
        assert opt.get("description"), f"{role}: {name} has no description"
    for name in sorted(set(spec) | set(defaults)):
        assert name.startswith(f"medai_{role}_") or (role, name) in PREFIX_EXCEPTIONS, \
            f"{role}: {name} is not prefixed medai_{role}_"


@pytest.mark.parametrize("base", ROLE_DIRS, ids=lambda p: p.name)
def test_role_has_a_molecule_scenario(base):
    assert (base / "molecule/default/molecule.yml").is_file() and (base / "molecule/default/verify.yml").is_file(), \
        f"{base.name}: no molecule/default scenario (molecule.yml and verify.yml)"


@pytest.mark.parametrize("base", ROLE_DIRS, ids=lambda p: p.name)
def test_role_task_names_one_style(base):
    """Every task and handler is named `<Role> | <what it does>`: the label is the role's name as written in prose
    (OS, K3s, GPU, MetalLB...), the same throughout the role; medai's progress lines show only the task name."""
    labels = set()
    for f, t, _ in _role_tasks(base):
        name = t.get("name")
        assert name, f"{f}: a task without a name: {sorted(t)}"
        m = NAME_STYLE.match(name)
        assert m and m["label"].lower() == base.name, f"{f}: {name!r} is not named '<{base.name} label> | ...'"
        labels.add(m["label"])
    assert len(labels) <= 1, f"{base.name}: several labels {sorted(labels)}"


def _walk_names(where: str, tasks) -> None:
    for t in tasks or []:
        assert NAME_STYLE.match(t.get("name") or ""), f"{where}: {t.get('name')!r} is not '<Label> | ...'"
        for key in ("block", "rescue", "always"):
            _walk_names(where, t.get(key))


def test_playbook_task_names_one_style():
    for f in sorted((ROOT / "playbooks").glob("*.yml")):
        for play in _yaml(f):
            assert play.get("name", "")[:1].isupper(), f"{f.name}: play {play.get('name')!r}"
            for key in ("pre_tasks", "tasks", "post_tasks", "handlers"):
                _walk_names(f.name, play.get(key))


@pytest.mark.parametrize("base", ROLE_DIRS, ids=lambda p: p.name)
def test_role_tasks_fqcn(base):
    for f, t, _ in _role_tasks(base):
        if any(k in t for k in ("block", "rescue", "always")):
            continue
        mod = next(k for k in t if k not in TASK_KEYWORDS)
        assert mod.count(".") >= 2, f"{f}: {t.get('name')}: {mod} is not FQCN"


@pytest.mark.parametrize("role", BUILTIN_TAGGED)
def test_role_tasks_tagged_and_builtin(role):
    tasks = _yaml(ROOT / "roles" / role / "tasks/main.yml")
    for t in tasks:
        assert role in t.get("tags", []), f"{role}: task {t.get('name')} lacks tag {role}"
        mod = next(k for k in t if k not in TASK_KEYWORDS)
        assert mod.startswith("ansible.builtin."), f"{role}: {t.get('name')}: {mod} is not FQCN"


@pytest.mark.parametrize("base", ROLE_DIRS, ids=lambda p: p.name)
def test_secret_tasks_have_no_log(base):
    """A task (or a block around it) that touches a secret variable has no_log: true. The one conditional form
    accepted is a no_log expression naming the secret itself (k3s' registries.yaml: no_log whenever a Harbor pull
    password is set)."""
    declared = {n for n, o in _specs(base).items() if o.get("no_log")}
    for f, t, no_log in _role_tasks(base):
        text = yaml.safe_dump(_leaf(t))
        touched = {v for v in declared if re.search(rf"\b{v}\b", text)} | {m.group(0) for m in SECRET_NAME.finditer(text)}
        if not touched:
            continue
        conditional = isinstance(no_log, str) and all(v in no_log for v in touched)
        assert no_log is True or conditional, f"{f}: {t.get('name')!r} touches {sorted(touched)} without no_log: true"


def test_k3s_secret_tasks_have_no_log():
    tasks = yaml.safe_load((ROOT / "roles/k3s/tasks/main.yml").read_text())
    for t in tasks:
        if "medai_k3s_token" in yaml.safe_dump(t):
            assert t.get("no_log") is True, t["name"]
