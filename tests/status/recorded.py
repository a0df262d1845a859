"""A site for the status tests: a state directory (run records, the installed bundle's copy with a small OCI
layout), an inventory, and the cluster as recorded Kubernetes and Helm API responses (fixtures/healthy.json)
behind the platform's adapter seam (installer.deploy.platform_step.adapters, tests/support/kube.py)."""
from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import json
import secrets
from pathlib import Path

import yaml

from installer.bundle.layout import BundleLayout
from installer.oci.layout import OCILayout
from installer.oci.media_types import OCI_MANIFEST
from tests.certs.certmaker import openssl_cert
from tests.support.fixture_bundles import fixture_manifest
from tests.support.gpg_keys import operator_key
from tests.support.kube import RecordedKube

FIXTURES = Path(__file__).parent / "fixtures"
IMAGES = ["quay.io/metallb/controller:v0.15.3", "docker.io/longhornio/longhorn-manager:v1.9.1",
          "docker.io/hashicorp/vault:1.20.4"]


class Recorded(RecordedKube):
    """Kube (tests/support/kube.py) and Helm at the seam, answering from recorded responses (one dict, mutable
    per test: the items are the dict's own)."""

    def __init__(self, doc: dict, secrets: dict[tuple[str, str], dict]):
        self.doc = copy.deepcopy(doc)
        tls = [{**s, "metadata": {"namespace": ns, "name": name}} for (ns, name), s in secrets.items()]
        super().__init__({("v1", "Node"): self.doc["nodes"]["items"],
                          ("longhorn.io/v1beta2", "Volume"): self.doc["volumes"]["items"],
                          ("v1", "Pod"): [p for pods in self.doc["pods"].values() for p in pods["items"]],
                          ("v1", "Secret"): tls})

    def listed(self, release, namespace):
        entry = self.doc["helm"].get(release)
        return entry if entry and entry["namespace"] == namespace else None


def stand_in(oci: OCILayout, ref: str) -> str:
    """A deterministic image manifest per reference (the recorded pods name these digests)."""
    layer = oci.write_blob(f"stand-in layer for {ref}\n".encode())
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                                      "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
                                      "size": 2},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer,
                                       "size": len(f"stand-in layer for {ref}\n")}]}, sort_keys=True).encode()
    digest = oci.write_blob(manifest)
    oci.set_ref(ref, digest, OCI_MANIFEST, len(manifest))
    return digest


def installed_bundle(home: Path) -> tuple[str, Path]:
    """The verified copy `medai install` keeps (manifest, index.json, OCI layout): (index sha256, root)."""
    index = json.dumps({"name": "status-test", "version": "1.0.0"}).encode()
    digest = hashlib.sha256(index).hexdigest()
    layout = BundleLayout.at(home / "bundles" / digest[:32])
    layout.root.mkdir(parents=True)
    (layout.root / "index.json").write_bytes(index)
    layout.manifest.write_text(yaml.safe_dump(fixture_manifest(("metallb", "longhorn", "vault")), sort_keys=False))
    oci = OCILayout(layout.oci, layout.tmp).init()
    for ref in IMAGES:
        stand_in(oci, ref)
    return digest, layout.root


def record(home: Path, command: str, inventory: Path, result: str, **data) -> dict:
    now = dt.datetime.now(dt.UTC)
    rid = f"{now:%Y%m%dT%H%M%SZ}-{command}-{secrets.token_hex(3)}"
    rec = {"id": rid, "command": command, "started": now.isoformat(timespec="seconds"),
           "finished": now.isoformat(timespec="seconds"), "result": result,
           "inventory": {"path": str(inventory.resolve()), "sha256": "0" * 64}, **data}
    (home / "runs" / rid).mkdir(parents=True)
    (home / "runs" / rid / "run.json").write_text(json.dumps(rec))
    return rec


def gpg_key(base: Path) -> Path:
    return operator_key(base / "gnupg", "op", base / "op.asc")


def tls_secret(base: Path, name: str, days: int) -> dict:
    cert = openssl_cert(base / f"{name}.crt", f"{name}.site.internal", end=dt.timedelta(days=days))
    ca = openssl_cert(base / f"{name}-ca.crt", "medai site1 root CA", end=dt.timedelta(days=1500))
    b64 = lambda p: base64.b64encode(p.read_bytes()).decode()  # noqa: E731
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "data": {"tls.crt": b64(cert), "ca.crt": b64(ca), "tls.key": base64.b64encode(b"not read").decode()}}


def inventory(base: Path, key: Path, **extra) -> Path:
    doc = {"all": {"vars": {"medai_cluster_name": "site1",
                            "medai_keycloak_hostname": "keycloak.example.internal", "medai_metallb_pool": "10.99.0.200-10.99.0.210",
                            "medai_vault_operators": [{"name": "op", "pgp_key": str(key)}],
                            "medai_vault_threshold": 1, "medai_vault_root_token_pgp_key": str(key), **extra},
                   "children": {"servers": {"hosts": {"srv1": {"ansible_host": "10.99.0.11"}}}}}}
    path = base / "site.yml"
    path.write_text(yaml.safe_dump(doc))
    return path
