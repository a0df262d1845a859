"""Molecule's create/destroy for the default (delegated) driver: lab nodes for a role's scenario.

molecule/shared/create.yml and destroy.yml call this module so Molecule nodes get the same air gap, SSH key and
default route as `medai lab up` (one implementation, in installer/lab/nodes.py).

    python -m installer.lab.molecule create  --state-dir DIR --instance-config FILE --platforms JSON
    python -m installer.lab.molecule destroy --state-dir DIR

A platform's `groups` decide its role: `servers` → K3s server, `gpu` → GPU agent, anything else → agent.
Prints one JSON line {"changed": bool, "lab": id}; errors print one line and exit 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from installer.core.errors import MedaiError
from installer.lab import nodes
from installer.lab.image import NODE_IMAGE, build_image


def specs_from_platforms(platforms: list[dict]) -> list[nodes.NodeSpec]:
    specs = []
    for p in platforms:
        groups = p.get("groups") or []
        specs.append(nodes.NodeSpec(hostname=str(p["name"]), role="server" if "servers" in groups else "agent",
                                    gpu="gpu" in groups))
    return specs


def instance_config(lab: nodes.Lab) -> list[dict]:
    return [{"instance": n.hostname, "address": n.ip, "user": "root", "port": "22", "identity_file": n.ssh_key}
            for n in lab.nodes]


def create(state_dir: Path, instance_config_path: Path, platforms: list[dict]) -> dict:
    state = state_dir / "lab.json"
    changed = False
    if state.exists():
        lab = nodes.Lab.load(state)
        states = nodes.container_states(lab)
        if not all(states.get(n.name) == "running" for n in lab.nodes):
            nodes.destroy_lab(lab)
            state.unlink()
    if not state.exists():
        specs = nodes.check_specs(specs_from_platforms(platforms))  # before the image is built: a typo starts nothing
        images = {p.get("image") for p in platforms if p.get("image")} or {NODE_IMAGE}
        if len(images) != 1:
            raise MedaiError(f"molecule platforms: one image per scenario, got {sorted(images)}")
        image = build_image(images.pop()) if NODE_IMAGE in images else images.pop()
        lab = nodes.create_lab(specs=specs, key_dir=state_dir / "ssh", image=image)
        lab.save(state)
        changed = True
    instance_config_path.write_text("# Molecule managed (installer/lab/molecule.py)\n"
                                    + yaml.safe_dump(instance_config(lab), sort_keys=False))
    instance_config_path.chmod(0o600)
    return {"changed": changed, "lab": lab.lab_id}


def destroy(state_dir: Path) -> dict:
    state = state_dir / "lab.json"
    if not state.exists():
        return {"changed": False, "lab": None}
    lab = nodes.Lab.load(state)
    nodes.destroy_lab(lab)
    state.unlink()
    return {"changed": True, "lab": lab.lab_id}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m installer.lab.molecule")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create")
    c.add_argument("--state-dir", type=Path, required=True)
    c.add_argument("--instance-config", type=Path, required=True)
    c.add_argument("--platforms", required=True, help="molecule_yml.platforms as JSON")
    d = sub.add_parser("destroy")
    d.add_argument("--state-dir", type=Path, required=True)
    args = ap.parse_args(argv)
    try:
        args.state_dir.mkdir(parents=True, exist_ok=True)
        if args.cmd == "create":
            result = create(args.state_dir, args.instance_config, json.loads(args.platforms))
        else:
            result = destroy(args.state_dir)
    except MedaiError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
