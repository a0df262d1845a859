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


def _play_roles(play: dict) -> list[dict]:
    return [r if isinstance(r, dict) else {"role": r} for r in play.get("roles") or []]


def test_site_order_and_serial_servers():
    plays = yaml.safe_load((ROOT / "playbooks/site.yml").read_text())
    roles = [r["role"] for p in plays for r in _play_roles(p)]
    assert roles == ["preflight", "os", "egress", "stage", "cilium", "longhorn", "k3s", "gpu", "k3s", "vault", "hardening",
                     "compliance", "egress", "egress"]
    servers = next(p for p in plays if p.get("hosts") == "servers")
    assert servers["serial"] == 1 and servers["roles"][0]["tags"] == ["k3s"]


def test_platform_node_prerequisites_run_where_they_belong():
    """site.yml and upgrade.yml run Cilium's node prerequisites on every node and Longhorn's on its storage nodes
    (every host without the host var medai_longhorn_storage: false), before K3s."""
    plays = yaml.safe_load((ROOT / "playbooks/site.yml").read_text())
    prereq = next(p for p in plays if any(r["role"] == "longhorn" for r in _play_roles(p)))
    assert prereq["hosts"] == "servers:agents"
    by_role = {r["role"]: r for r in _play_roles(prereq)}
    assert "when" not in by_role["cilium"], "cilium's prerequisites run on every node"
    assert by_role["longhorn"]["when"] == "medai_longhorn_storage | default(true) | bool"
    order = [p.get("name") for p in plays]
    assert order.index(prereq["name"]) < order.index("K3s servers, one at a time")

    upgrade = yaml.safe_load((ROOT / "playbooks/upgrade.yml").read_text())
    for play in upgrade[1:]:  # servers, agents, hosts: the node roles anchor is shared by the three
        included = {t["ansible.builtin.include_role"]["name"]: t for t in play["tasks"] if "ansible.builtin.include_role" in t}
        assert {"os", "cilium", "longhorn", "stage", "k3s"} <= set(included), play["name"]
        assert "when" not in included["cilium"]
        assert included["longhorn"]["when"] == "medai_longhorn_storage | default(true) | bool"
        assert set(included["longhorn"]["ansible.builtin.include_role"]["apply"]["tags"]) == {"servers", "agents", "hosts"}


# Roles with tasks (host_state only carries the medai_host_state module: tests/deploy/test_host_state_module.py)
ROLE_DIRS = sorted(p for p in (ROOT / "roles").iterdir() if (p / "tasks").is_dir())
# Roles whose every top-level task in tasks/main.yml carries the role's name as a tag and uses an ansible.builtin
# module (modprobe aside: community.general's, as in the os role). Hardening tags by rule id (tested below).
BUILTIN_TAGGED = ["preflight", "stage", "k3s", "cilium", "longhorn", "egress"]
# medai_host_state: the roles' own module (roles/host_state/library), by its canonical name as ansible-lint wants it
LOCAL_MODULES = {"medai_host_state"}
MODULES_BEYOND_BUILTIN = {"community.general.modprobe"} | LOCAL_MODULES
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
    assert {p.name for p in ROLE_DIRS} >= set(BUILTIN_TAGGED) | {"os", "vault", "gpu", "hardening", "compliance"}


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
        assert mod.count(".") >= 2 or mod in LOCAL_MODULES, f"{f}: {t.get('name')}: {mod} is not FQCN"


@pytest.mark.parametrize("role", BUILTIN_TAGGED)
def test_role_tasks_tagged_and_builtin(role):
    tasks = _yaml(ROOT / "roles" / role / "tasks/main.yml")
    for t in tasks:
        assert role in t.get("tags", []), f"{role}: task {t.get('name')} lacks tag {role}"
        mod = next(k for k in t if k not in TASK_KEYWORDS)
        assert mod.startswith("ansible.builtin.") or mod in MODULES_BEYOND_BUILTIN, f"{role}: {t.get('name')}: {mod}"


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


# Modules that change a host. command/shell/script count unless the task says changed_when: false (a probe);
# systemd_service only when it enables or starts something. Tasks delegated to the control host do not count.
HOST_WRITES = {"copy", "template", "file", "lineinfile", "blockinfile", "replace", "package", "apt", "dnf", "yum",
               "modprobe", "systemd_service", "systemd", "service", "sysctl", "mount", "unarchive", "get_url", "pamd",
               "command", "shell", "script"}


def _host_writes(role: str) -> set[str]:
    """The modules with which a role's install tasks (every tasks/*.yml but reset.yml) change its hosts."""
    found = set()
    for f, t, _ in _role_tasks(ROOT / "roles" / role):
        if f.name == "reset.yml" or f.parts[2] != "tasks" or any(k in t for k in ("block", "rescue", "always")):
            continue
        mod = next(k for k in t if k not in TASK_KEYWORDS)
        short = mod.rsplit(".", 1)[-1]
        if short not in HOST_WRITES or t.get("delegate_to") == "localhost":
            continue
        if short in ("command", "shell", "script") and t.get("changed_when") is False:
            continue
        if short in ("systemd_service", "systemd", "service") and not {"enabled", "state"} & set(t[mod] or {}):
            continue
        found.add(short)
    return found


def _install_roles() -> list[str]:
    """Roles site.yml and upgrade.yml run (listed or included), in site.yml's order, each once."""
    names = []
    for pb in ("site.yml", "upgrade.yml"):
        for play in _yaml(ROOT / "playbooks" / pb):
            names += [r["role"] for r in _play_roles(play)]
            for key in ("pre_tasks", "tasks", "post_tasks"):
                names += [t["ansible.builtin.include_role"]["name"] for t in play.get(key) or []
                          if "ansible.builtin.include_role" in t]
    return list(dict.fromkeys(names))


def test_reset_covers_every_role_that_writes_on_hosts():
    """Every role the install or upgrade runs that changes a host has tasks/reset.yml beside its install tasks, and
    playbooks/reset.yml includes each of them, unguarded (no `is file` test that would hide a missing one), in the
    reverse order of the install."""
    roles = _install_roles()
    writers = [r for r in roles if _host_writes(r)]
    assert "preflight" in roles and not _host_writes("preflight"), "the detector must see preflight as read-only"
    assert set(writers) == {"os", "egress", "stage", "cilium", "longhorn", "k3s", "gpu", "vault", "hardening",
                            "compliance"}, writers
    missing = [r for r in writers if not (ROOT / "roles" / r / "tasks/reset.yml").is_file()]
    assert not missing, f"roles that write on hosts without tasks/reset.yml: {missing}"

    play = _yaml(ROOT / "playbooks/reset.yml")[0]
    include = next(t for t in play["tasks"] if "ansible.builtin.include_role" in t)
    assert include["ansible.builtin.include_role"]["tasks_from"] == "reset"
    assert "when" not in include, "a guard on the include would hide a role without reset.yml"
    assert include["loop"] == list(reversed(writers))
    assert play["hosts"] == "servers:agents"


# What an install task places that its role's reset leaves, and why; and, for targets that come from a loop over
# a variable, the path all of them lie under.
KEPT = {
    ("os", "{{_medai_os_chrony_conf}}"): "chrony keeps the site's NTP servers: the host still needs its time",
    ("os", "{{_medai_os_chrony_options}}"): "chronyd's options file, the package's own, rewritten by medai",
    ("gpu", "{{medai_gpu_manifests_dir}}"): "K3s' auto-deploy directory under /var/lib/rancher, which the k3s reset removes",
}
# Targets named through a loop over a variable, or through another variable: the paths they can be, or lie under.
UNDER = {("stage", "{{item}}"): ["{{medai_stage_dir}}"], ("os", "{{_medai_os_repo}}.tar"): ["{{medai_os_repo_root}}"],
         ("k3s", "/etc/systemd/system/{{_medai_k3s_unit}}.service"): ["/etc/systemd/system/k3s.service",
                                                                     "/etc/systemd/system/k3s-agent.service"],
         ("k3s", "{{_medai_k3s_env_file}}"): ["/etc/systemd/system/k3s.service.env",
                                             "/etc/systemd/system/k3s-agent.service.env"]}
# medai's own directories, shared by several roles and removed by playbooks/reset.yml after the roles' resets.
SHARED = {"/var/lib/medai", "/etc/medai"}
JINJA = re.compile(r"\{\{\s*([\w.]+)[^}]*\}\}")


def _norm(path: str) -> str:
    """`{{ medai_x | default('...') }}/y` -> `{{medai_x}}/y`: a path as the reset and the install both name it."""
    return JINJA.sub(lambda m: "{{" + m.group(1) + "}}", str(path))


@pytest.mark.parametrize("role", ["os", "egress", "stage", "cilium", "longhorn", "k3s", "gpu", "vault", "compliance"])
def test_reset_removes_what_the_role_places(role):
    """Every path a role's install tasks write (dest/path of its file-writing tasks, literal loops expanded) is
    removed by its tasks/reset.yml, itself or through a directory above it, or is listed in KEPT with the reason."""
    placed = set()
    for f, t, _ in _role_tasks(ROOT / "roles" / role):
        if f.name == "reset.yml" or any(k in t for k in ("block", "rescue", "always")) or t.get("delegate_to") == "localhost":
            continue
        mod = next(k for k in t if k not in TASK_KEYWORDS)
        args = t[mod] if isinstance(t[mod], dict) else {}
        if mod in LOCAL_MODULES:  # its entries, listed in `files` or in the task's list-valued vars
            lists = [args.get("files")] + list((t.get("vars") or {}).values())
            placed |= {_norm(e["path"]) for lst in lists if isinstance(lst, list) for e in lst
                       if isinstance(e, dict) and "path" in e}
            continue
        target = args.get("dest") or args.get("path")
        if mod.rsplit(".", 1)[-1] not in {"copy", "template", "file", "blockinfile", "lineinfile", "replace"} or not target:
            continue
        if args.get("state") == "absent":
            continue
        loop = t.get("loop")
        if isinstance(loop, list) and target.startswith("{{ item"):
            key = target.strip("{} ").partition(".")[2]
            placed |= {_norm(i[key] if key else i) for i in loop}
        else:
            placed.add(_norm(target))
    text = (ROOT / "roles" / role / "tasks/reset.yml").read_text()
    removed = ({p for p in re.findall(r"/[\w./-]+", text) if not p.endswith("/")}
               | {_norm(m) for m in re.findall(r"\{\{[^}]*\}\}(?:/[\w.-]+)*", text)}
               | {"{{" + v + "}}" for v in re.findall(r"\b_?medai_\w+", text)} | SHARED)
    assert SHARED <= set(_yaml(ROOT / "playbooks/reset.yml")[0]["tasks"][-1]["loop"])
    for path in sorted(placed):
        covered = all(u in removed or any(u.startswith(r.rstrip("/") + "/") for r in removed)
                      for u in UNDER.get((role, path), [path]))
        assert covered or (role, path) in KEPT, f"{role}: {path} is placed by the install tasks but not removed by tasks/reset.yml"


HARDENING = ROOT / "roles/hardening"
LEVELS = {"anssi_bp28_minimal", "anssi_bp28_intermediary"}  # the ANSSI BP-028 level that first selects the rule


def _hardening_tasks() -> list[tuple[str, set[str]]]:
    """(name, tags with those of its blocks) of every task the hardening role runs (tasks/main.yml's imports)."""
    out: list[tuple[str, set[str]]] = []

    def walk(items: list[dict], inherited: set[str]) -> None:
        for item in items:
            tags = inherited | set(item.get("tags") or [])
            if "block" in item:
                walk(item["block"], tags)
            else:
                out.append((item["name"], tags))

    for imp in _yaml(HARDENING / "tasks/main.yml"):
        walk(_yaml(HARDENING / "tasks" / imp["ansible.builtin.import_tasks"]), set(imp.get("tags") or []))
    return out


def test_hardening_one_toggle_one_tag_one_level_per_control_and_names_carry_the_rule():
    defaults = _yaml(HARDENING / "defaults/main.yml")
    rules: set[str] = set()
    level: dict[str, str] = {}
    shared = []
    for name, tags in _hardening_tasks():
        ids = sorted(t.removeprefix("rule_") for t in tags if t.startswith("rule_"))
        if "always" in tags:
            assert not ids, f"{name}: a task that always runs belongs to no rule"
            continue
        assert ids, f"{name}: tagged with no rule_<id>"
        if len(ids) == 1:
            assert name.startswith(f"Hardening | Rule {ids[0]}: "), f"{name}: the name does not carry rule {ids[0]}"
            assert len(tags & LEVELS) == 1, f"{name}: one level tag of {sorted(LEVELS)} wanted, has {sorted(tags & LEVELS)}"
            assert level.setdefault(ids[0], next(iter(tags & LEVELS))) in tags, f"{name}: rule {ids[0]} in two levels"
        else:  # a write several rules share (the managed-files call, the PAM stack): every one of their tags
            assert name.startswith("Hardening | Rules "), f"{name}: shared by {ids}, named as one rule"
            shared.append((name, ids, tags & LEVELS))
        rules.update(ids)
    for name, ids, levels in shared:  # at least one level, and the level of each rule it serves
        assert levels >= {level[i] for i in ids if i in level} and levels, f"{name}: levels {sorted(levels)}"
    assert len(rules) == 32
    for rule in rules:
        assert isinstance(defaults.get(f"medai_hardening_{rule}"), bool), f"rule {rule}: no toggle medai_hardening_{rule}"


@pytest.mark.parametrize("rule", ["accounts_password_pam_minlen", "sysctl_kernel_sysrq", "sudo_add_umask",
                                  "accounts_passwords_pam_faillock_deny"])
def test_tags_rule_id_runs_that_control_alone_in_the_real_playbook(rule, tmp_path):
    """`ansible-playbook --tags rule_<id> playbooks/site.yml` lists the tasks that always run (argument checks) and,
    of the rest, exactly the tasks of that control."""
    env = dict(os.environ, ANSIBLE_ROLES_PATH=str(ROOT / "roles"))
    r = subprocess.run(["ansible-playbook", "--list-tasks", "--tags", f"rule_{rule}", "-i",
                        str(ROOT / "inventories/example/site.yml"), str(ROOT / "playbooks/site.yml")],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    listed = [re.match(r"\s+(\S+) : (.*)\tTAGS: \[(.*)\]$", ln) for ln in r.stdout.splitlines() if "\tTAGS: [" in ln]
    ran = [(m[1], m[2], set(m[3].split(", "))) for m in listed if m and "always" not in m[3].split(", ")]
    want = sorted(name for name, tags in _hardening_tasks() if f"rule_{rule}" in tags)
    assert want and sorted(name for role, name, tags in ran) == want, ran
    assert {role for role, _, _ in ran} == {"hardening"}
    assert all(f"rule_{rule}" in tags for _, _, tags in ran)
