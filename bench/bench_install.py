"""Install time on a 3-node lab (1 server, 1 agent, 1 GPU agent) and the idempotent rerun time, as a ratio.

    .venv/bin/python bench/bench_install.py                      # every role: preflight … compliance
    .venv/bin/python bench/bench_install.py --tags preflight,stage,k3s

The bundle is tests/support/lab_bundles.py's (files, a real Debian 12 repository, the SCAP datastream; no K3s binary,
so K3s is configured, not started). Prints each run's summary line and the ratio. The lab is removed afterwards.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("CONTAINERS_CONF", str(ROOT / ".tools" / "containers.conf"))
os.environ["PATH"] = f"{ROOT / '.tools' / 'bin'}:{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}"

from installer.lab import nodes  # noqa: E402
from installer.lab.image import NODE_IMAGE, build_image  # noqa: E402
from installer.lab.inventory import write_inventory  # noqa: E402
from tests.support.lab import LAB_VARS  # noqa: E402
from tests.support.lab_bundles import make_bundle  # noqa: E402


def timed_install(inv: Path, home: Path, tags: list[str]) -> float:
    env = dict(os.environ, MEDAI_HOME=str(home), COLUMNS="200")
    t = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "installer.cli.main", "install", "--inventory", str(inv), *tags, "--yes",
                        "--insecure-skip-signature"],
                       cwd=ROOT, env=env, capture_output=True, text=True)
    took = time.monotonic() - t
    if r.returncode != 0:
        sys.exit(f"install failed:\n{r.stdout[-2000:]}\n{r.stderr}")
    print(r.stdout.strip().splitlines()[-1])
    return took


def newest_events(home: Path) -> list[dict]:
    """The ansible-runner events of the newest install's run record."""
    runs = sorted((home / "runs").iterdir())
    return [json.loads(f.read_text()) for f in (runs[-1] / "runner" / "artifacts" / "run" / "job_events").glob("*.json")]


def task_times(events: list[dict]) -> dict[tuple[str, str, str], float]:
    """Seconds per task of a run, the slowest host's: {(role, task uuid, task name): seconds}; tasks outside a
    role (the plays' fact gathering) are '(play)'."""
    per_task: dict[tuple[str, str, str], float] = {}
    for ev in events:
        data = ev.get("event_data") or {}
        if ev.get("event") not in ("runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_item_on_ok") \
                or data.get("duration") is None:
            continue
        key = (data.get("role") or "(play)", data.get("task_uuid") or data.get("task", ""), data.get("task", ""))
        per_task[key] = max(per_task.get(key, 0.0), float(data["duration"]))
    return per_task


def playbook_span(events: list[dict]) -> float:
    """Seconds from ansible-playbook's first event to its last (the rest of a run is medai around it: checks,
    bundle verification, the runner's start, evidence and the leak scan)."""
    from datetime import datetime

    stamps = sorted(datetime.fromisoformat(ev["created"]) for ev in events if ev.get("created"))
    return (stamps[-1] - stamps[0]).total_seconds() if stamps else 0.0


LOCAL_ACTIONS = {"set_fact", "assert", "fail", "debug", "include_tasks", "import_tasks", "include_role", "meta"}


def remote_tasks(events: list[dict]) -> int:
    """How many tasks of a run ran on a host (not skipped everywhere, not a controller-only action)."""
    ran = set()
    for ev in events:
        data = ev.get("event_data") or {}
        action = (data.get("task_action") or "").rsplit(".", 1)[-1]
        if ev.get("event") in ("runner_on_ok", "runner_on_failed") and action not in LOCAL_ACTIONS:
            ran.add(data.get("task_uuid"))
    return len(ran)


def role_breakdown(tasks: dict[tuple[str, str, str], float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for (role, _, _), secs in tasks.items():
        out[role] = out.get(role, 0.0) + secs
    return out


def task_floor(inv: Path, tmp: Path, tasks: int = 20) -> float:
    """Seconds one task costs on every lab host when it does nothing (`command: true`, same inventory and the
    runner's Ansible settings): the floor under each task of a rerun."""
    play = tmp / "floor.yml"
    play.write_text("- hosts: servers:agents\n  gather_facts: false\n  tasks:\n"
                    + "".join("    - ansible.builtin.command: 'true'\n      changed_when: false\n" for _ in range(tasks)))
    env = dict(os.environ, ANSIBLE_PIPELINING="True", ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_FORKS="10")
    cmd = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", str(inv), str(play)]
    subprocess.run(cmd, env=env, check=True, capture_output=True)  # connections up, as in a real run
    t = time.monotonic()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    return (time.monotonic() - t) / tasks


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--tags", default="")
    ap.add_argument("--tasks", type=int, default=0, help="also list the rerun's N slowest tasks")
    args = ap.parse_args()
    tags = ["--tags", args.tags] if args.tags else []
    with tempfile.TemporaryDirectory(prefix="medai-bench-") as tmp:
        tmp = Path(tmp)
        lab = nodes.create_lab(servers=1, agents=1, gpu_agents=1, key_dir=tmp / "ssh", image=build_image(NODE_IMAGE))
        try:
            bundle = make_bundle(tmp / "bundle", full=True)
            inv = write_inventory(lab, tmp / "site.yml", cluster_name="bench", bundle_dir=bundle, extra_vars=LAB_VARS)
            first = timed_install(inv, tmp / "home", tags)
            first_roles = role_breakdown(task_times(newest_events(tmp / "home")))
            rerun = timed_install(inv, tmp / "home", tags)
            rerun_events = newest_events(tmp / "home")
            rerun_tasks = task_times(rerun_events)
            rerun_roles = role_breakdown(rerun_tasks)
            ran = remote_tasks(rerun_events)
            floor = task_floor(inv, tmp)
        finally:
            nodes.destroy_lab(lab)
    print(f"roles: {args.tags or 'all (preflight, os, stage, k3s, hardening, compliance)'}")
    print(f"install (3 nodes): {first:.1f} s")
    print(f"idempotent rerun:  {rerun:.1f} s")
    print(f"ratio rerun/install: {rerun / first:.2f}")
    print(f"ansible-playbook's share of the rerun: {playbook_span(rerun_events):.1f} s (the rest is medai around it)")
    print("per role (slowest host per task, summed): install / rerun / ratio")
    for role in sorted(first_roles, key=lambda r: -first_roles[r]):
        a, b = first_roles[role], rerun_roles.get(role, 0.0)
        print(f"  {role:<12} {a:7.1f} s {b:7.1f} s  {b / a if a else 0:5.2f}")
    print(f"a task that does nothing costs {floor:.2f} s on the 3 hosts (Ansible's per-task cost, see bench/README.md);"
          f" the rerun ran {ran} tasks on hosts: {ran * floor:.1f} s of its {rerun:.1f} s at that floor")
    if args.tasks:
        print(f"the rerun's {args.tasks} slowest tasks (slowest host):")
        for (role, _, name), secs in sorted(rerun_tasks.items(), key=lambda kv: -kv[1])[:args.tasks]:
            print(f"  {secs:6.2f} s  {role:<12} {name}")


if __name__ == "__main__":
    main()
