"""The Vault part of the site inventory (all.vars.medai_vault_*), checked before anything contacts Vault.

    medai_vault_operators:            # who holds an unseal share: one OpenPGP public key file each
      - {name: alice, pgp_key: keys/alice.asc}
      - {name: bob,   pgp_key: keys/bob.asc}
      - {name: carol, pgp_key: keys/carol.asc}
    medai_vault_threshold: 2          # shares needed to unseal (2 <= threshold <= operators when >1 operator)
    medai_vault_root_token_pgp_key: keys/security-officer.asc   # the initial root token is encrypted to it
    medai_vault_members:              # optional: each Vault server's own API address (unseal and status
      - {name: vault-0, addr: https://10.20.0.31:8200}          #   talk to every one of them)
    medai_vault_addr: https://vault.site.internal:8200          # optional: the service address (MetalLB)
    medai_vault_ca_cert: pki/root-ca.pem                        # CA that signed Vault's TLS certificate

Without `medai_vault_members`, medai reaches the in-cluster pods (vault-0 … vault-N-1 in namespace
`medai_vault_namespace`) through `kubectl port-forward` with the cluster's kubeconfig; see docs/vault.md.
Relative paths are relative to the inventory file's directory.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from installer.core.errors import VaultError
from installer.core.yamldoc import field_path, lower_name
from installer.deploy.inventory import Inventory

_NAME = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$")


class Operator(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: lower_name(_NAME) = Field(description="operator's short name; names their share file")
    pgp_key: str = Field(description="OpenPGP public key file (armored or binary) with an encryption subkey")


class Member(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    addr: str

    @field_validator("addr")
    @classmethod
    def _addr(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+$", v):
            raise ValueError(f"{v!r} must be http(s)://HOST:PORT")
        return v


class VaultVars(BaseModel):
    model_config = ConfigDict(extra="ignore")
    medai_vault_operators: list[Operator] = Field(min_length=1)
    medai_vault_threshold: int = Field(ge=1)
    medai_vault_root_token_pgp_key: str
    medai_vault_members: list[Member] = Field(default_factory=list)
    medai_vault_addr: str | None = None
    medai_vault_ca_cert: str | None = None
    medai_vault_namespace: str = "vault"
    medai_vault_kv_mount: str = "medai"
    medai_vault_pki_mount: str = "pki_int"
    medai_vault_domain: str = "cluster.local"
    medai_vault_root_ca_dir: str | None = None
    medai_vault_audit_file: str = "/vault/audit/audit.log"
    medai_vault_kubernetes_host: str = "https://kubernetes.default.svc:443"
    medai_vault_kubernetes_ca_cert: str | None = None
    medai_vault_transit: dict | None = None


@dataclass
class VaultSettings:
    inventory: Inventory
    operators: list[Operator]
    threshold: int
    root_token_pgp_key: Path
    members: list[Member]
    addr: str | None
    ca_cert: Path | None
    namespace: str
    kv_mount: str
    pki_mount: str
    domain: str
    root_ca_dir: Path | None
    audit_file: str
    kubernetes_host: str
    kubernetes_ca_cert: Path | None
    # Auto-unseal through another Vault's Transit engine: init makes recovery shares instead of unseal shares.
    transit: bool = False

    @property
    def cluster(self) -> str:
        return self.inventory.cluster

    @property
    def node_count(self) -> int:
        return len(self.inventory.servers) + len(self.inventory.agents)

    @property
    def replicas(self) -> int:
        """HA Raft needs 3 voters to survive one loss; a smaller cluster runs a single server."""
        return 3 if self.node_count >= 3 else 1

    def pgp_key_path(self, op: Operator) -> Path:
        return self._path(op.pgp_key)

    def _path(self, p: str) -> Path:
        path = Path(p).expanduser()
        return path if path.is_absolute() else self.inventory.path.parent / path


def vault_settings(inv: Inventory) -> VaultSettings:
    """The inventory's medai_vault_* vars, checked; every problem raised at once, naming the field."""
    raw: dict[str, Any] = dict(inv.site.model_extra or {})
    where = f"{inv.path}: all.vars"
    try:
        v = VaultVars.model_validate(raw)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            msg = "required for Vault" if err["type"] == "missing" else err["msg"].removeprefix("Value error, ")
            lines.append(f"{where}.{field_path(err['loc'])}: {msg}")
        raise VaultError("\n".join(lines)) from None
    problems = []
    n = len(v.medai_vault_operators)
    if v.medai_vault_threshold > n:
        problems.append(f"{where}.medai_vault_threshold: {v.medai_vault_threshold} is more than the {n} operators")
    if n > 1 and v.medai_vault_threshold < 2:
        problems.append(f"{where}.medai_vault_threshold: 1 would let any single operator unseal alone")
    names = [o.name for o in v.medai_vault_operators]
    for name in sorted({x for x in names if names.count(x) > 1}):
        problems.append(f"{where}.medai_vault_operators: operator {name!r} listed twice")
    s = VaultSettings(
        inventory=inv, operators=v.medai_vault_operators, threshold=v.medai_vault_threshold,
        root_token_pgp_key=Path(), members=v.medai_vault_members, addr=v.medai_vault_addr, ca_cert=None,
        namespace=v.medai_vault_namespace, kv_mount=v.medai_vault_kv_mount, pki_mount=v.medai_vault_pki_mount,
        domain=v.medai_vault_domain, root_ca_dir=None, audit_file=v.medai_vault_audit_file,
        kubernetes_host=v.medai_vault_kubernetes_host, kubernetes_ca_cert=None,
        transit=v.medai_vault_transit is not None,
    )
    s.root_token_pgp_key = s._path(v.medai_vault_root_token_pgp_key)
    s.ca_cert = s._path(v.medai_vault_ca_cert) if v.medai_vault_ca_cert else None
    s.root_ca_dir = s._path(v.medai_vault_root_ca_dir) if v.medai_vault_root_ca_dir else None
    s.kubernetes_ca_cert = s._path(v.medai_vault_kubernetes_ca_cert) if v.medai_vault_kubernetes_ca_cert else None
    for i, op in enumerate(v.medai_vault_operators):
        if not s.pgp_key_path(op).is_file():
            problems.append(f"{where}.medai_vault_operators[{i}].pgp_key: {s.pgp_key_path(op)} not found")
    if not s.root_token_pgp_key.is_file():
        problems.append(f"{where}.medai_vault_root_token_pgp_key: {s.root_token_pgp_key} not found")
    if problems:
        raise VaultError("\n".join(problems))
    return s
