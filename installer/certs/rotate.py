"""medai certs rotate: renew one group before it expires, without downtime beyond a rolling restart.

  k3s           playbooks/certs.yml (tag rotate): `k3s certificate rotate` on one server at a time, K3s restarted
                and Ready before the next; then each agent's k3s-agent restarted in turn (agents reconnect)
  vault         every service certificate re-issued from the site intermediate into KV (<kv>/<service>/tls);
                with the cluster's kubeconfig, their Secrets (the catalogue's) updated and the Deployments and
                StatefulSets mounting them restarted (rolling); Vault's own listener takes its new certificate
                when its pods restart (each comes back sealed: `medai vault unseal`)
  intermediate  the root's key never comes online: a CSR is made inside Vault and written to a file, with what
                the operator must carry to the offline root and back (docs/certs.md)

A group whose nodes are not all Ready is refused (a rotation would add a restart to an already degraded site).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from installer.core.atomic import atomic_write_text
from installer.core.errors import InstallError, MedaiError
from installer.deploy import platform_step
from installer.deploy.inventory import load_inventory
from installer.deploy.node_conditions import not_ready
from installer.deploy.runner import run_playbook
from installer.deploy.state import recorded
from installer.deploy.vault.catalogue import TLS_SERVICES, Catalogue, for_inventory, secret_objects
from installer.deploy.vault.client import endpoints, service_endpoint, vault_call
from installer.deploy.vault.pki import ROOT_CERT, ROOT_KEY, root_ca, sign_intermediate
from installer.deploy.vault.pki_engine import issue
from installer.deploy.vault.settings import vault_settings
from installer.deploy.vault.share_prompt import collect_shares, share_reader
from installer.deploy.vault.token import root_session

ROTATABLE = ("k3s", "vault", "intermediate")
RESTART_ANNOTATION = "medai.io/certs-rotated-at"


@dataclass
class Rotation:
    group: str
    done: list[str] = field(default_factory=list)     # one line per thing renewed
    carry: list[str] = field(default_factory=list)    # what the operator must do by hand (the offline root)


def refuse_unless_ready(kube, group: str) -> None:
    try:
        nodes = kube.list("v1", "Node")
    except MedaiError as e:  # the adapter's one line (installer.platform.apply.KubeApi)
        raise InstallError(f"certs rotate --group {group}: cannot read the nodes ({str(e).splitlines()[0][:200]}); "
                           "nothing rotated") from None
    bad = [(n.get("metadata") or {}).get("name", "?") for n in nodes if not_ready(n) is not None]
    if not nodes or bad:
        raise InstallError(f"certs rotate --group {group}: node(s) not Ready: {', '.join(bad) or 'no nodes listed'}; "
                           "nothing rotated (fix them first: medai status)")


def _uses_secret(workload: dict, secret: str) -> bool:
    spec = ((workload.get("spec") or {}).get("template") or {}).get("spec") or {}
    for v in spec.get("volumes") or []:
        if ((v.get("secret") or {}).get("secretName")) == secret:
            return True
        for src in ((v.get("projected") or {}).get("sources") or []):
            if ((src.get("secret") or {}).get("name")) == secret:
                return True
    return False


def refresh_secrets(kube, secrets: list[dict], now: str) -> list[str]:
    """Apply the Secrets (already made from KV), then restart every Deployment and StatefulSet in their
    namespaces that mounts one (a pod-template annotation: the controller's rolling update)."""
    done = []
    for obj in secrets:
        kube.apply(obj)
        name, ns = obj["metadata"]["name"], obj["metadata"]["namespace"]
        done.append(f"Secret {ns}/{name} updated")
        for kind in ("Deployment", "StatefulSet"):
            for w in kube.list("apps/v1", kind, ns):
                wname = (w.get("metadata") or {}).get("name")
                if not _uses_secret(w, name):
                    continue
                kube.apply({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": wname, "namespace": ns},
                            "spec": {"template": {"metadata": {"annotations": {RESTART_ANNOTATION: now}}}}})
                done.append(f"{kind} {ns}/{wname} restarted (rolling)")
    return done


def _tls_secrets(inv, read: Callable[[str], dict], services: list[str]) -> list[dict]:
    cat = for_inventory(inv)
    wanted = {f"{svc}/tls" for svc in services}
    subset = [s for s in cat.secrets if s.paths and set(s.paths) <= wanted]
    return secret_objects(Catalogue(cat.kv_mount, cat.components, [], subset), read)


def rotate_vault(inv, ask_share, services: list[str] | None = None, kube=None) -> Rotation:
    """Re-issue ``services``' certificates (all of TLS_SERVICES by default) with a root token made from the
    operators' shares; then, when ``kube`` is given, their Secrets and the workloads mounting them."""
    s = vault_settings(inv)
    services = services or list(TLS_SERVICES)
    if kube is not None:
        refuse_unless_ready(kube, "vault")
    rot = Rotation("vault")
    with endpoints(s) as eps:
        ep = service_endpoint(s, eps)
        shares = collect_shares(ask_share, s.threshold)
        with root_session(ep, shares) as client:
            for svc in services:
                out = issue(s, ep, client, svc)
                rot.done.append(f"{svc}: new certificate serial {out['serial']}, valid until {out['notAfter']}, "
                                f"in {out['kv']}")

            def read(path: str) -> dict:
                with vault_call(ep, f"read {s.kv_mount}/{path}"):
                    return client.secrets.kv.v2.read_secret_version(path=path, mount_point=s.kv_mount,
                                                                    raise_on_deleted_version=True)["data"]["data"]

            secrets = _tls_secrets(inv, read, services) if kube is not None else []
        del shares
    if kube is not None:
        rot.done += refresh_secrets(kube, secrets, dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
        secrets.clear()
    if "vault" in services:
        rot.carry.append("Vault's listener serves its new certificate once its pods restart, one at a time; each "
                         "comes back sealed: restart one pod, `medai vault unseal`, then the next")
    return rot


def intermediate_csr(inv, ask_share, out: Path) -> Rotation:
    """A new intermediate key and CSR made inside Vault (a new issuer on the same mount), the CSR written to
    ``out`` for the offline root; what the operator carries is listed."""
    s = vault_settings(inv)
    with endpoints(s) as eps:
        ep = service_endpoint(s, eps)
        with root_session(ep, collect_shares(ask_share, s.threshold)) as client, vault_call(ep, "intermediate CSR"):
            csr = client.secrets.pki.generate_intermediate(
                "internal", f"medai {s.cluster} intermediate CA",
                extra_params={"key_type": "ec", "key_bits": 384}, mount_point=s.pki_mount)["data"]["csr"]
    atomic_write_text(out, csr, mode=0o644)
    rot = Rotation("intermediate", done=[f"new intermediate key made inside Vault; its CSR is {out}"])
    rot.carry = [
        f"carry {out} (a CSR: public, no secret in it) to the offline root CA's host",
        "there: medai certs sign-intermediate --csr <that file> --root-ca-dir <the root's directory> --out signed.pem",
        "carry signed.pem back (public) and run: medai certs rotate --group intermediate --signed signed.pem",
    ]
    return rot


def set_signed_intermediate(inv, ask_share, signed: Path) -> Rotation:
    """Set the certificate the offline root signed as the mount's new issuer (and make it the default)."""
    s = vault_settings(inv)
    try:
        pem = signed.read_text()
    except OSError as e:
        raise MedaiError(f"{signed}: cannot read the signed intermediate: {e.strerror}", path=str(signed)) from None
    if "BEGIN CERTIFICATE" not in pem:
        raise MedaiError(f"{signed}: not a PEM certificate", path=str(signed))
    with endpoints(s) as eps:
        ep = service_endpoint(s, eps)
        with root_session(ep, collect_shares(ask_share, s.threshold)) as client, vault_call(ep, "set signed intermediate"):
            resp = client.secrets.pki.set_signed_intermediate(pem, mount_point=s.pki_mount)
            imported = ((resp or {}).get("data") or {}).get("imported_issuers") or []
            if imported:
                client.write_data(f"{s.pki_mount}/config/issuers", data={"default": imported[0]})
    return Rotation("intermediate", done=[f"signed intermediate set in {s.pki_mount}/ "
                                          f"({'new default issuer ' + imported[0] if imported else 'issuer already present'})"],
                    carry=["re-issue the service certificates from it: medai certs rotate --group vault"])


def rotate_k3s(inv, kube, record, console) -> Rotation:
    """playbooks/certs.yml's rotate plays (serial: 1) after every node is Ready."""
    refuse_unless_ready(kube, "k3s")
    summary = run_playbook(record, "certs.yml", inv.path, {}, {}, console=console, tags="rotate",
                           host_key_checking=inv.site.medai_ssh_host_key_checking)
    if not summary.succeeded:
        raise InstallError(f"certs rotate --group k3s: {summary.first_failure}; the servers after it were not touched "
                           f"(run record {record.dir})")
    return Rotation("k3s", done=[f"k3s certificate rotate on {', '.join(inv.servers)} (one at a time); "
                                 f"k3s-agent restarted on {', '.join(inv.agents) or 'no agents'}"])


def sign_offline(csr: Path, root_ca_dir: Path, out: Path) -> Rotation:
    """On the offline root's host: sign Vault's intermediate CSR with the existing root (never creates one)."""
    if not (root_ca_dir / ROOT_KEY).is_file() or not (root_ca_dir / ROOT_CERT).is_file():
        raise MedaiError(f"{root_ca_dir}: no site root CA here ({ROOT_KEY}, {ROOT_CERT})", path=str(root_ca_dir))
    try:
        csr_pem = csr.read_text()
    except OSError as e:
        raise MedaiError(f"{csr}: cannot read the CSR: {e.strerror}", path=str(csr)) from None
    root = root_ca(root_ca_dir, "unused")
    atomic_write_text(out, sign_intermediate(root, csr_pem) + root.cert_pem, mode=0o644)
    return Rotation("intermediate", done=[f"intermediate signed by {root.cert_path}: {out}"],
                    carry=[f"carry {out} (public) back and run: medai certs rotate --group intermediate --signed {out}"])


WHAT_CHANGES = {
    "k3s": "K3s's certificates are renewed and K3s restarts on each node in turn.",
    "vault": "The services' certificates are re-issued, their Secrets replaced and their pods restarted (rolling).",
    "intermediate": "Vault's intermediate CA is replaced (a new key and CSR, or the signed certificate set).",
}


def rotate_group(inventory: Path, group: str, *, services: list[str], stdin: bool, signed: Path | None,
                 csr_out: Path, console, confirm: Callable[[str], None] | None = None) -> Rotation:
    """`medai certs rotate --group GROUP`: one group, under a run record. ``confirm`` (the operator's yes) is asked
    once the inventory is read, before anything is touched."""
    if group not in ROTATABLE:
        raise MedaiError(f"--group {group!r}: one of {', '.join(ROTATABLE)}", field="--group")
    inv = load_inventory(inventory)
    if confirm is not None:
        confirm(f"Rotate the {group} certificates of cluster {inv.cluster}? {WHAT_CHANGES[group]}")
    with recorded(f"certs-rotate-{group}", inv.path, ok="ok") as record:
        if group == "k3s":
            kube = platform_step.installed_kube(inv.cluster)
            if kube is None:
                raise InstallError(f"certs rotate --group k3s: no kubeconfig for {inv.cluster} (install first)")
            rot = rotate_k3s(inv, kube, record, console)
        elif group == "vault":
            rot = rotate_vault(inv, share_reader(stdin), services, platform_step.installed_kube(inv.cluster))
        elif signed is not None:
            rot = set_signed_intermediate(inv, share_reader(stdin), signed)
        else:
            rot = intermediate_csr(inv, share_reader(stdin), csr_out)
        record.data["summary"] = {"group": group, "done": rot.done, "carry": rot.carry}
    return rot
