"""The platform's components and every secret the install generates: what lives where in Vault.

One entry per secret: the component that reads it, its KV path under the component's prefix, and how each
field is made. `create_missing` writes an entry once (check-and-set 0), so a rerun never rotates a password
a running component already uses.
"""
from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import hvac
import hvac.exceptions

from installer.deploy.state import state_dir


@dataclass(frozen=True)
class Component:
    name: str
    namespace: str
    service_account: str | None  # None: nothing in the cluster reads it (only an operator with a token)


COMPONENTS = [
    Component("k3s", "kube-system", None),
    Component("vault", "vault", "vault"),
    Component("keycloak", "keycloak", "keycloak"),
    Component("harbor", "harbor", "harbor-core"),
    Component("inference", "inference", "vllm"),
    Component("grafana", "monitoring", "grafana"),
]
# Components that get a TLS certificate from the site intermediate.
TLS_SERVICES = ["vault", "keycloak", "harbor", "inference"]


def password() -> str:
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class Entry:
    component: str
    path: str
    fields: dict[str, Callable[[CatalogueContext], str]]

    @property
    def kv_path(self) -> str:
        return f"{self.component}/{self.path}"


@dataclass
class CatalogueContext:
    cluster: str
    home: Path | None = None

    def k3s_token(self) -> str:
        from installer.deploy.state import cluster_token

        return cluster_token(self.cluster, self.home or state_dir())


def _const(v: str) -> Callable[[CatalogueContext], str]:
    return lambda _ctx: v


CATALOGUE = [
    Entry("k3s", "cluster-token", {"token": CatalogueContext.k3s_token}),
    Entry("keycloak", "admin", {"username": _const("admin"), "password": lambda _c: password()}),
    Entry("keycloak", "db", {"username": _const("keycloak"), "password": lambda _c: password()}),
    Entry("harbor", "admin", {"username": _const("admin"), "password": lambda _c: password()}),
    Entry("harbor", "robot", {"name": _const("robot$medai-pull"), "secret": lambda _c: password()}),
    Entry("harbor", "db", {"username": _const("harbor"), "password": lambda _c: password()}),
    Entry("grafana", "admin", {"username": _const("admin"), "password": lambda _c: password()}),
]


def create_missing(client: hvac.Client, mount: str, ctx: CatalogueContext) -> tuple[list[str], list[str]]:
    """Write every catalogue entry not yet in Vault; return (created, already there) KV paths, no values."""
    created, kept = [], []
    for e in CATALOGUE:
        try:
            client.secrets.kv.v2.read_secret_version(path=e.kv_path, mount_point=mount, raise_on_deleted_version=True)
            kept.append(e.kv_path)
            continue
        except hvac.exceptions.InvalidPath:
            pass
        values = {k: make(ctx) for k, make in e.fields.items()}
        client.secrets.kv.v2.create_or_update_secret(path=e.kv_path, secret=values, cas=0, mount_point=mount)
        del values
        created.append(e.kv_path)
    return created, kept
