"""K3s's certificates on the nodes: playbooks/certs.yml fetches every *.crt under K3s's TLS directories
(server/tls, agent) of every node to the control host; each file is parsed here, one Cert per file and host.
An unreachable node, or a node where no file came back, is one line naming the host."""
from __future__ import annotations

from pathlib import Path

from rich.console import Console

from installer.certs.model import Cert, from_pem
from installer.core.errors import MedaiError
from installer.deploy.runner import run_playbook

PLAYBOOK = "certs.yml"
TLS_DIRS = ("/var/lib/rancher/k3s/server/tls", "/var/lib/rancher/k3s/agent")


def fetched_certs(out: Path, hosts: list[str], failures: list[str]) -> list[Cert]:
    """Parse what the playbook fetched under ``out/<host>/<absolute path>``; hosts with nothing are lines too."""
    certs: list[Cert] = []
    for host in hosts:
        root = out / host
        files = sorted(p for p in root.rglob("*.crt") if p.is_file()) if root.is_dir() else []
        for f in files:
            node_path = "/" + str(f.relative_to(root))
            certs.append(from_pem(f.read_bytes(), "k3s", node_path, host))
        if not files:
            why = next((x.split(": ", 1)[1] for x in failures if x.startswith(f"{host}: ")), None)
            certs.append(Cert("k3s", TLS_DIRS[0], host, error=why or f"no certificate files under {', '.join(TLS_DIRS)}"))
    return certs


def read_node_certs(inv, record, console: Console) -> list[Cert]:
    """Run the read play of playbooks/certs.yml into the run record's directory and parse the files."""
    out = record.dir / "certs"
    out.mkdir(mode=0o700, exist_ok=True)
    try:
        summary = run_playbook(record, PLAYBOOK, inv.path, {"medai_certs_out": str(out)}, {}, console=console,
                               tags="read", host_key_checking=inv.site.medai_ssh_host_key_checking)
    except MedaiError as e:
        return [Cert("k3s", TLS_DIRS[0], h, error=f"reading the node failed: {str(e).splitlines()[0]}")
                for h in inv.servers + inv.agents]
    return fetched_certs(out, inv.servers + inv.agents, summary.failures)
