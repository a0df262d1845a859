"""Reach each in-cluster Vault pod from the control host: `kubectl port-forward pod/vault-N` to loopback.

Unseal must talk to every pod (a Service, the MetalLB address among them, reaches only one of them), so
without `medai_vault_members` medai forwards 127.0.0.1:<free port> to each pod's 8200 with the cluster's
kubeconfig. Not executed in these tests (no K3s here); the decisions (command, pod names) are unit-tested.
"""
from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

from installer.core.errors import VaultError
from installer.deploy.state import kubeconfig_path
from installer.deploy.vault.settings import Member, VaultSettings

VAULT_PORT = 8200


def pod_names(s: VaultSettings) -> list[str]:
    return [f"vault-{i}" for i in range(s.replicas)]


def forward_command(kubectl: str, kubeconfig: str, namespace: str, pod: str, local_port: int) -> list[str]:
    return [kubectl, "--kubeconfig", kubeconfig, "-n", namespace, "port-forward", "--address", "127.0.0.1",
            f"pod/{pod}", f"{local_port}:{VAULT_PORT}"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, pod: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise VaultError(f"kubectl port-forward to pod/{pod} exited: {proc.stderr.read().decode()[:200] if proc.stderr else ''}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.2)
    raise VaultError(f"kubectl port-forward to pod/{pod} did not open 127.0.0.1:{port} within 15 s")


@contextlib.contextmanager
def pod_forwards(s: VaultSettings) -> Iterator[list[Member]]:
    kubectl = shutil.which("kubectl")
    if not kubectl:
        raise VaultError("medai_vault_members is not set and kubectl is not on PATH: "
                         "set the members' addresses in the inventory or put kubectl on PATH")
    kc = kubeconfig_path(s.cluster)
    if not kc.is_file():
        raise VaultError(f"{kc}: no kubeconfig for cluster {s.cluster}: install the cluster first or set medai_vault_members")
    procs: list[subprocess.Popen] = []
    try:
        members = []
        for pod in pod_names(s):
            port = _free_port()
            proc = subprocess.Popen(forward_command(kubectl, str(kc), s.namespace, pod, port),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            procs.append(proc)
            _wait_port(port, proc, pod)
            # Vault's certificate carries 127.0.0.1 among its SANs (roles/vault), so TLS still verifies here.
            members.append(Member(name=pod, addr=f"https://127.0.0.1:{port}"))
        yield members
    finally:
        for proc in procs:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
