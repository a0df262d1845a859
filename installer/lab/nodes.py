"""Lab nodes: podman containers booting systemd on an `--internal` network, reachable from the host over SSH.

Air gap: podman gives an internal network no gateway and no NAT. The host gets one address on the bridge (the
network's first address, which podman's IPAM reserves as gateway and never hands out) so the control host can SSH
to the nodes, as it would in a data centre; iptables rules drop everything the host would otherwise route in or
out of that bridge (node-to-node traffic on the bridge still flows), so the host is never a way out. K3s refuses
to start without a default route, so each node gets `default via <last address of the subnet>`: an address that
nothing owns, so anything not on the lab subnet dies at
ARP on the lab bridge. A `blackhole` default route was rejected: it has no device, and K3s and Ansible
(ansible_default_ipv4) pick the node address from the default route's interface.
"""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
import socket
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from installer.core.errors import LabError
from installer.lab.image import NODE_IMAGE
from installer.lab.podman import podman, run

LABEL = "medai.lab"
FIRST_NODE_OFFSET = 10  # nodes get .10, .11, …; .1 is the host, .100+ is left for the API VIP and MetalLB
BOOT_TIMEOUT_S = 120
SSH_TIMEOUT_S = 60


@dataclass
class LabNode:
    name: str  # container name (unique on the host)
    hostname: str  # inventory host name and the node's hostname
    ip: str
    role: str  # "server" or "agent"
    gpu: bool
    ssh_key: str

    @property
    def groups(self) -> list[str]:
        return ["servers"] if self.role == "server" else (["agents", "gpu"] if self.gpu else ["agents"])


@dataclass
class Lab:
    lab_id: str
    network: str
    subnet: str
    bridge: str
    host_ip: str
    blackhole_hop: str
    ssh_key: str
    nodes: list[LabNode] = field(default_factory=list)

    @property
    def servers(self) -> list[LabNode]:
        return [n for n in self.nodes if n.role == "server"]

    @property
    def agents(self) -> list[LabNode]:
        return [n for n in self.nodes if n.role == "agent"]

    @property
    def gpu(self) -> list[LabNode]:
        return [n for n in self.nodes if n.gpu]

    def node(self, hostname: str) -> LabNode:
        for n in self.nodes:
            if n.hostname == hostname or n.name == hostname:
                return n
        raise LabError(f"lab {self.lab_id}: no node named {hostname}")

    def address(self, offset: int) -> str:
        """The subnet's address at `offset` (e.g. 100 → x.y.z.100 in a /24): for VIPs and pools in the lab."""
        return str(ipaddress.ip_network(self.subnet).network_address + offset)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Lab:
        try:
            data = json.loads(path.read_text())
            data["nodes"] = [LabNode(**n) for n in data["nodes"]]
            return cls(**data)
        except FileNotFoundError as e:
            raise LabError(f"{path}: no lab state (run `medai lab up`)") from e
        except (ValueError, TypeError, KeyError) as e:
            raise LabError(f"{path}: unreadable lab state ({e})") from e


def new_lab_id() -> str:
    return "ml" + secrets.token_hex(3)


def ensure_ssh_key(directory: Path) -> Path:
    """An ed25519 key pair for the lab only (private key 0600); reused when present."""
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / "id_ed25519"
    if not key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "medai-lab", "-f", str(key)], what="ssh-keygen")
    key.chmod(0o600)
    return key


@dataclass(frozen=True)
class NodeSpec:
    hostname: str
    role: str = "agent"  # "server" or "agent"
    gpu: bool = False


def default_specs(servers: int, agents: int, gpu_agents: int) -> list[NodeSpec]:
    """server-1…, agent-1…, gpu-1… (GPU nodes are agents in the gpu group)."""
    if servers < 1 or agents < 0 or gpu_agents < 0:
        raise LabError(f"lab: need at least 1 server (got servers={servers}, agents={agents}, gpu_agents={gpu_agents})")
    return (
        [NodeSpec(f"server-{i + 1}", "server") for i in range(servers)]
        + [NodeSpec(f"agent-{i + 1}", "agent") for i in range(agents)]
        + [NodeSpec(f"gpu-{i + 1}", "agent", True) for i in range(gpu_agents)]
    )


_HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?$")


def check_specs(specs: list[NodeSpec]) -> list[NodeSpec]:
    """Refuse a bad node list before anything is built or started."""
    if not 1 <= len(specs) <= 80:
        raise LabError(f"lab: {len(specs)} nodes requested (1 to 80)")
    for spec in specs:
        if not _HOSTNAME.match(spec.hostname) or spec.role not in ("server", "agent"):
            raise LabError(f"lab node {spec.hostname!r}: hostname must be a short DNS label, role server or agent")
    if len({s.hostname for s in specs}) != len(specs):
        raise LabError("lab: node hostnames must be unique")
    return specs


def create_lab(
    *,
    servers: int = 1,
    agents: int = 0,
    gpu_agents: int = 0,
    key_dir: Path,
    specs: list[NodeSpec] | None = None,
    lab_id: str | None = None,
    image: str = NODE_IMAGE,
) -> Lab:
    """Start a lab and return it once every node runs systemd and answers SSH. Nothing is left behind on failure."""
    specs = check_specs(specs if specs is not None else default_specs(servers, agents, gpu_agents))
    lab_id = lab_id or new_lab_id()
    key = ensure_ssh_key(key_dir)
    network = f"{lab_id}-net"
    podman("network", "create", "--internal", "--label", f"{LABEL}={lab_id}", network, what=f"creating network {network}")
    lab = Lab(lab_id=lab_id, network=network, subnet="", bridge="", host_ip="", blackhole_hop="", ssh_key=str(key))
    try:
        info = json.loads(podman("network", "inspect", network).stdout)[0]
        subnet = ipaddress.ip_network(info["subnets"][0]["subnet"])
        hosts = list(subnet.hosts())
        lab.subnet, lab.bridge = str(subnet), info["network_interface"]
        lab.host_ip, lab.blackhole_hop = str(hosts[0]), str(hosts[-1])
        for i, spec in enumerate(specs):
            lab.nodes.append(
                LabNode(
                    name=f"{lab_id}-{spec.hostname}",
                    hostname=spec.hostname,
                    ip=str(hosts[FIRST_NODE_OFFSET - 1 + i]),
                    role=spec.role,
                    gpu=spec.gpu,
                    ssh_key=str(key),
                )
            )
        add_hosts = [f"--add-host={n.hostname}:{n.ip}" for n in lab.nodes]
        pub = Path(f"{key}.pub").read_text()
        for n in lab.nodes:
            podman(
                "create",
                "--name",
                n.name,
                "--hostname",
                n.hostname,
                "--label",
                f"{LABEL}={lab_id}",
                "--network",
                network,
                "--ip",
                n.ip,
                *add_hosts,
                "--systemd=always",
                "--privileged",
                image,
                what=f"creating node {n.name}",
            )
            _seed_ssh(n, pub)
        podman("start", *(n.name for n in lab.nodes), what=f"starting lab {lab_id}")
        _attach_host(lab)
        for n in lab.nodes:
            podman(
                "exec",
                n.name,
                "ip",
                "route",
                "replace",
                "default",
                "via",
                lab.blackhole_hop,
                "dev",
                "eth0",
                what=f"default route on {n.name}",
            )
        for n in lab.nodes:
            wait_for_ssh(n)
            wait_for_systemd(n)
    except BaseException:
        destroy_lab(lab)
        raise
    return lab


def _seed_ssh(n: LabNode, pubkey: str) -> None:
    """Before first boot: the lab key in root's authorized_keys and a host key of the node's own (sshd uses only
    that one), so sshd starts once, at boot, already right — no restart racing systemd."""
    with tempfile.TemporaryDirectory(prefix="medai-node-") as tmp:
        etc = Path(tmp, "etc")
        (etc / "sshd_config.d").mkdir(parents=True)
        run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", n.hostname, "-f", str(etc / "ssh_host_ed25519_key")],
            what="ssh-keygen (node host key)",
        )
        (etc / "sshd_config.d" / "10-medai-lab.conf").write_text(
            "# medai lab: this node's own host key only (not the keys baked into the image)\nHostKey /etc/ssh/ssh_host_ed25519_key\n"
        )
        dot_ssh = Path(tmp, "root-ssh")
        dot_ssh.mkdir(mode=0o700)
        auth = dot_ssh / "authorized_keys"
        auth.write_text(pubkey.strip() + "\n")
        auth.chmod(0o600)
        podman("cp", f"{etc}/.", f"{n.name}:/etc/ssh/", what=f"seeding host key of {n.name}")
        podman("cp", f"{dot_ssh}/.", f"{n.name}:/root/.ssh/", what=f"seeding authorized_keys of {n.name}")


def wait_for_systemd(n: LabNode, timeout: float = BOOT_TIMEOUT_S) -> str:
    """Wait until systemd has finished booting; return its state (running, or degraded with the failed units)."""
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        state = podman("exec", n.name, "systemctl", "is-system-running", check=False).stdout.strip()
        if state == "running":
            return state
        if state == "degraded":
            failed = podman("exec", n.name, "systemctl", "--failed", "--plain", "--no-legend", check=False).stdout
            return f"degraded: {' '.join(line.split()[0] for line in failed.splitlines() if line.strip())}"
        time.sleep(0.5)
    raise LabError(f"node {n.name}: systemd did not finish booting in {timeout:.0f}s (state {state or 'unknown'})")


def _attach_host(lab: Lab) -> None:
    prefix = ipaddress.ip_network(lab.subnet).prefixlen
    have = run(["ip", "-4", "-o", "addr", "show", "dev", lab.bridge], what=f"ip addr show {lab.bridge}").stdout
    if f" {lab.host_ip}/" not in have:
        run(["ip", "addr", "add", f"{lab.host_ip}/{prefix}", "dev", lab.bridge], what=f"adding {lab.host_ip} to {lab.bridge}")
    # Routed traffic only: with bridge netfilter on (bridge-nf-call-iptables=1), node-to-node frames on the bridge
    # also pass FORWARD with in = out = the bridge, and those must flow.
    for match in (["-i", lab.bridge, "!", "-o", lab.bridge], ["!", "-i", lab.bridge, "-o", lab.bridge]):
        run(
            ["iptables", "-w", "-I", "FORWARD", *match, "-m", "comment", "--comment", f"{LABEL}={lab.lab_id}", "-j", "DROP"],
            what="iptables (lab air gap)",
        )


def _detach_host(lab: Lab) -> None:
    rules = run(["iptables", "-w", "-S", "FORWARD"], check=False).stdout.splitlines()
    for rule in rules:
        if f'"{LABEL}={lab.lab_id}"' in rule or f" {LABEL}={lab.lab_id} " in rule + " ":
            run(["iptables", "-w", *rule.replace("-A ", "-D ", 1).replace('"', "").split()], check=False)


def ssh_argv(node: LabNode, *command: str) -> list[str]:
    """ssh from the control host to a node; host key checking is off for the throwaway lab only."""
    return [
        "ssh",
        "-i",
        node.ssh_key,
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "ConnectTimeout=5",
        f"root@{node.ip}",
        *command,
    ]


def ssh(node: LabNode, command: str, *, check: bool = True, timeout: float = 60):
    return run(ssh_argv(node, command), check=check, timeout=timeout, what=f"ssh {node.hostname}")


def wait_for_ssh(node: LabNode, timeout: float = SSH_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((node.ip, 22), timeout=2):
                pass
            proc = ssh(node, "true", check=False, timeout=15)
            if proc.returncode == 0:
                return
            last = proc.stderr.strip()
        except OSError as e:
            last = str(e)
        time.sleep(0.5)
    raise LabError(f"node {node.name} ({node.ip}): SSH not reachable from the host after {timeout:.0f}s: {last}")


def destroy_lab(lab: Lab) -> None:
    """Remove the lab's containers, host firewall rules, host bridge address and network. Safe to repeat."""
    ids = podman("ps", "-aq", "--filter", f"label={LABEL}={lab.lab_id}", check=False).stdout.split()
    if ids:
        podman("rm", "-f", "-t", "0", *ids, check=False, timeout=180)
    _detach_host(lab)
    podman("network", "rm", "-f", lab.network, check=False)


def container_states(lab: Lab) -> dict[str, str]:
    """Container name -> state ("running", "exited", …) for the lab's containers."""
    out = podman("ps", "-a", "--filter", f"label={LABEL}={lab.lab_id}", "--format", "json", check=False).stdout
    try:
        rows = json.loads(out or "[]")
    except ValueError:
        rows = []
    return {r["Names"][0]: r["State"] for r in rows}
