"""The one catalogue of platform secrets: where each lives in Vault, its fields, who makes it, which policy reads
it and which Kubernetes Secret it is synced into. Generation (``ensure``), the KV writes, the policies and
Kubernetes-auth roles (installer/deploy/vault/configure.py), the Secret sync of the install and the names the
roles' chart values reference (secretKeyRef / existingSecret) all derive from here.

Path scheme: ``<kv mount>/<component>/<name>`` (e.g. ``medai/harbor/admin``); no cluster name in the path,
because every cluster has a Vault of its own (docs/vault.md). Field names are the keys of the Kubernetes Secret
the entry is synced into, so the sync copies fields verbatim (the TLS entries, written by Vault's PKI with its
own field names, and keycloak-config-cli's environment Secret map fields to keys explicitly).

Every value is made once: ``ensure`` writes only what Vault does not hold, so reruns keep every credential.
Nothing here logs or returns a value; reports carry paths only.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from installer.core.errors import InventoryError
from installer.deploy import platform_secrets as ps
from installer.deploy.keycloak.settings import CLIENT_IDS, keycloak_site
from installer.deploy.platform_secrets import random_text
from installer.platform.components import backup_schedules
from installer.platform.values import defaults, role_vars

# ------------------------------------------------------------------------------------------------ components


@dataclass(frozen=True)
class Component:
    name: str                    # KV prefix, policy medai-<name>, Kubernetes auth role <name>
    namespace: str
    service_account: str | None  # None: nothing in the cluster logs in to Vault as it (only an operator)


# Components that get a TLS certificate from the site intermediate (Vault's PKI roles).
TLS_SERVICES = ["vault", "keycloak", "harbor", "inference"]
K3S, VAULT, KEYCLOAK, HARBOR, INFERENCE = "k3s", "vault", "keycloak", "harbor", "inference"
BACKUP = backup_schedules.VAULT_ROLE


def _components(keycloak_ns="keycloak", harbor_ns="harbor", inference_ns="medai-inference") -> list[Component]:
    return [
        Component(K3S, "kube-system", None),
        Component(VAULT, "vault", "vault"),
        Component(KEYCLOAK, keycloak_ns, "keycloak"),
        Component(HARBOR, harbor_ns, "harbor-core"),
        Component(INFERENCE, inference_ns, "default"),  # the chart names no service account
        Component(BACKUP, "vault", backup_schedules.CLAIM),  # the raft snapshot CronJob (docs/backup.md)
    ]


# The components with the roles' default namespaces (what a Vault configured without an inventory uses).
COMPONENTS = _components()

# ------------------------------------------------------------------------------------------------ entries

# who makes an entry's value
MEDAI = "medai (generated on the control host, written straight into Vault)"
PKI = "Vault PKI (pki_int/, issued by medai vault setup / rotate-cert)"
K3S_TOKEN = "medai install (the K3s join token, copied)"


@dataclass(frozen=True)
class Entry:
    component: str
    name: str
    fields: tuple[str, ...]
    made_by: str
    make: Callable[[], dict[str, str]] | None = None  # None: made elsewhere (PKI, the K3s token copy)
    read_by: str = ""   # who reads it besides the Secret sync (an operator, medai's own API calls)

    @property
    def path(self) -> str:
        """Relative to the KV mount: ``<component>/<name>``."""
        return f"{self.component}/{self.name}"


@dataclass(frozen=True)
class KubeSecret:
    """A Kubernetes Secret the install syncs from Vault: {Secret key: (entry path, field)}."""
    name: str
    namespace: str
    component: str
    keys: Mapping[str, tuple[str, str]]
    type: str = "Opaque"
    when: str = "always"   # "bootstrap": only until the temporary Keycloak admin is removed

    @property
    def paths(self) -> list[str]:
        return sorted({p for p, _ in self.keys.values()})


@dataclass
class Catalogue:
    kv_mount: str
    components: list[Component]
    entries: list[Entry]
    secrets: list[KubeSecret] = field(default_factory=list)

    def entry(self, path: str) -> Entry:
        for e in self.entries:
            if e.path == path:
                return e
        raise KeyError(path)

    def component(self, name: str) -> Component:
        return next(c for c in self.components if c.name == name)

    def secret(self, name: str, namespace: str | None = None) -> KubeSecret:
        return next(s for s in self.secrets if s.name == name and namespace in (None, s.namespace))

    def generated(self) -> list[Entry]:
        return [e for e in self.entries if e.make is not None]

    def check(self) -> None:
        """The catalogue's own invariants (also asserted by the tests): unique paths, every Secret key names a
        field of an entry, and a Secret in a component's namespace reads only that component's entries (so the
        component's policy covers everything its Secrets hold)."""
        paths = [e.path for e in self.entries]
        if len(paths) != len(set(paths)):
            raise ValueError(f"secrets catalogue: duplicate path(s) {sorted({p for p in paths if paths.count(p) > 1})}")
        names = {c.name for c in self.components}
        for e in self.entries:
            if e.component not in names:
                raise ValueError(f"secrets catalogue: {e.path}: unknown component {e.component}")
        for s in self.secrets:
            for key, (path, fld) in s.keys.items():
                e = self.entry(path)
                if fld not in e.fields:
                    raise ValueError(f"secrets catalogue: Secret {s.namespace}/{s.name} key {key}: {path} has no field {fld}")
                if e.component != s.component:
                    raise ValueError(f"secrets catalogue: Secret {s.namespace}/{s.name} reads {path} of another component")


# ------------------------------------------------------------------------------------------------ the site's catalogue


def _pg_password() -> Callable[[], str]:
    return lambda: random_text(32)


def env_name(kind: str, name: str) -> str:
    """keycloak-config-cli's variable for a client secret / user password (``$(env:NAME)`` in the realm)."""
    return f"KC_{kind}_{re.sub(r'[^A-Z0-9]', '_', name.upper())}"


KC_PERMANENT_ADMIN_ENV = "KC_PERMANENT_ADMIN_PASSWORD"
KC_BOOTSTRAP_USER = "temp-admin"


@dataclass
class _Parts:
    """What build() gathers: the entries, the Secrets synced from them, the components by name."""
    by_name: dict[str, Component]
    entries: list[Entry]
    secrets: list[KubeSecret] = field(default_factory=list)

    def tls(self, component: str, secret_name: str, ca_secret: str | None = None) -> None:
        self.entries.append(Entry(component, "tls", ("certificate", "private_key", "ca_chain"), PKI))
        p = f"{component}/tls"
        ns = self.by_name[component].namespace
        self.secrets.append(KubeSecret(secret_name, ns, component, {"tls.crt": (p, "certificate"), "tls.key": (p, "private_key"),
                                                                    "ca.crt": (p, "ca_chain")}, "kubernetes.io/tls"))
        if ca_secret:
            self.secrets.append(KubeSecret(ca_secret, ns, component, {"ca.crt": (p, "ca_chain")}))


def _databases(parts: _Parts, databases: list[dict], source: str) -> None:
    """PostgreSQL owners: <component>/db, synced into <db>-db-credentials (CNPG's initdb secret, the chart's DB secret)."""
    pw = _pg_password()
    for d in databases:
        comp = parts.by_name.get(d["name"])
        if comp is None or comp.namespace != d["namespace"]:
            raise InventoryError(f"{source}: all.vars.medai_postgres_databases: database {d['name']!r} in namespace "
                                 f"{d['namespace']!r} belongs to no platform component (keycloak, harbor in their namespaces)")
        owner = d["owner"]
        parts.entries.append(Entry(comp.name, "db", ("username", "password"), MEDAI,
                                   lambda owner=owner: {"username": owner, "password": pw()}))
        parts.secrets.append(KubeSecret(f"{d['name']}-db-credentials", comp.namespace, comp.name,
                                        {"username": (f"{comp.name}/db", "username"), "password": (f"{comp.name}/db", "password")},
                                        "kubernetes.io/basic-auth"))


def _keycloak(parts: _Parts, kc: dict, client_ids, users) -> None:
    ns = parts.by_name[KEYCLOAK].namespace
    admin_user = kc.get("medai_keycloak_admin_username", "medai-admin")
    parts.entries += [
        Entry(KEYCLOAK, "bootstrap-admin", ("username", "password"), MEDAI,
              lambda: {"username": KC_BOOTSTRAP_USER, "password": ps.random_text(32)}),
        Entry(KEYCLOAK, "admin", ("username", "password"), MEDAI,
              lambda: {"username": admin_user, "password": ps.keycloak_password()},
              "medai (removes the bootstrap admin through the admin API)"),
    ]
    env_keys = {KC_PERMANENT_ADMIN_ENV: ("keycloak/admin", "password")}
    for c in client_ids:
        parts.entries.append(Entry(KEYCLOAK, f"clients/{c}", ("secret",), MEDAI, lambda: {"secret": ps.keycloak_password()},
                                   "medai (Harbor's OIDC client secret, set through Harbor's API)" if c == "harbor" else ""))
        env_keys[env_name("CLIENT_SECRET", c)] = (f"keycloak/clients/{c}", "secret")
    for u in users:
        parts.entries.append(Entry(KEYCLOAK, f"users/{u}", ("initial-password",), MEDAI,
                                   lambda: {"initial-password": ps.keycloak_password()}))
        env_keys[env_name("USER_PASSWORD", u)] = (f"keycloak/users/{u}", "initial-password")
    parts.secrets += [
        KubeSecret(kc.get("medai_keycloak_bootstrap_secret", "keycloak-bootstrap-admin"), ns, KEYCLOAK,
                   {"username": ("keycloak/bootstrap-admin", "username"),
                    "password": ("keycloak/bootstrap-admin", "password")}, when="bootstrap"),
        KubeSecret("keycloak-permanent-admin", ns, KEYCLOAK,
                   {"username": ("keycloak/admin", "username"), "password": ("keycloak/admin", "password")}),
        KubeSecret(kc.get("medai_keycloak_config_cli_env_secret", "keycloak-config-cli-env"), ns, KEYCLOAK, env_keys),
    ]
    parts.tls(KEYCLOAK, kc.get("medai_keycloak_tls_secret", "keycloak-tls"))


def _harbor(parts: _Parts, hv: dict) -> None:
    names = hv.get("medai_harbor_secret_names") or {}
    ns = parts.by_name[HARBOR].namespace
    for item, key, make in ps.harbor_makers():
        parts.entries.append(Entry(HARBOR, item, tuple(make.fields), MEDAI, make,
                                   "medai (Harbor's API configuration)" if item == "admin" else ""))
        parts.secrets.append(KubeSecret(names.get(key, f"medai-harbor-{item}"), ns, HARBOR,
                                        {f: (f"{HARBOR}/{item}", f) for f in make.fields}))
    for robot in ("cluster-pull", "site-ci"):
        parts.entries.append(Entry(HARBOR, f"robots/{robot}", ("username", "password"), MEDAI,
                                   lambda robot=robot: {"username": f"robot${robot}", "password": ps.random_text(32)},
                                   "medai (sets it on the robot through Harbor's API)"
                                   + ("; the site's CI (an operator hands it over; not synced)" if robot == "site-ci" else "")))
    pull = "harbor/robots/cluster-pull"
    parts.secrets.append(KubeSecret(names.get("trivy_db_pull", "medai-harbor-trivy-db-pull"), ns, HARBOR,
                                    {"username": (pull, "username"), "password": (pull, "password")}))
    parts.tls(HARBOR, names.get("tls", "medai-harbor-tls"), names.get("ca", "medai-harbor-site-ca"))


def _inference(parts: _Parts, iv: dict | None) -> None:
    if iv is None:
        parts.entries.append(Entry(INFERENCE, "tls", ("certificate", "private_key", "ca_chain"), PKI, None,
                                   "no inference tier on this site (no gpu hosts): issued, not synced"))
        return
    ns = parts.by_name[INFERENCE].namespace
    parts.entries.append(Entry(INFERENCE, "api-key", ("api-key",), MEDAI, lambda: {"api-key": ps.random_text(48)}))
    parts.secrets.append(KubeSecret(iv.get("medai_inference_api_key_secret", "medai-inference-api-key"), ns, INFERENCE,
                                    {"api-key": ("inference/api-key", "api-key")}))
    parts.tls(INFERENCE, ((iv.get("medai_inference_lb") or {}).get("tlsSecretName")) or "medai-inference-tls")


def build(kv_mount: str = "medai", *, databases: list[dict] | None = None, keycloak: dict | None = None,
          harbor: dict | None = None, inference: dict | None = None, client_ids=None, users=(),
          source: str = "inventory") -> Catalogue:
    """The catalogue from the roles' variables (``role_vars``): databases from roles/postgres, Secret names and
    namespaces from roles/keycloak, roles/harbor and roles/inference (None: that component is not installed)."""
    kc, hv = keycloak or {}, harbor or {}
    comps = _components(kc.get("medai_keycloak_namespace", "keycloak"), hv.get("medai_harbor_namespace", "harbor"),
                        (inference or {}).get("medai_inference_namespace", "medai-inference"))
    parts = _Parts({c.name: c for c in comps}, [
        Entry(K3S, "cluster-token", ("token",), K3S_TOKEN, None, "an operator joining a node (not synced)"),
        Entry(VAULT, "tls", ("certificate", "private_key", "ca_chain"), PKI, None,
              "medai vault rotate-cert; the running vault-tls Secret is made from the offline root by roles/vault"),
    ])
    _databases(parts, databases or [], source)
    if keycloak is not None:
        _keycloak(parts, kc, CLIENT_IDS if client_ids is None else client_ids, users)
    if harbor is not None:
        _harbor(parts, hv)
    _inference(parts, inference)
    cat = Catalogue(kv_mount.strip("/"), comps, parts.entries, parts.secrets)
    cat.check()
    return cat


def for_inventory(inv, kv_mount: str | None = None) -> Catalogue:
    """The site's catalogue: the roles' variables for this inventory (defaults, all.vars over them)."""

    site_vars = inv.site.model_dump()
    mount = kv_mount or site_vars.get("medai_vault_kv_mount") or "medai"
    users: list[str] = []
    if any(k.startswith("medai_keycloak_clients") for k in site_vars if site_vars.get(k)):
        users = [u.username for u in keycloak_site(site_vars, str(inv.path)).users]
    kc = role_vars("keycloak", inv)
    hv = role_vars("harbor", inv) if site_vars.get("medai_harbor_hostname") else None
    iv = role_vars("inference", inv) if inv.gpu else None
    return build(mount, databases=role_vars("postgres", inv)["medai_postgres_databases"], keycloak=kc, harbor=hv,
                 inference=iv, users=users, source=str(inv.path))


def default_catalogue(kv_mount: str = "medai") -> Catalogue:
    """Every component with the roles' defaults (no site): what `medai vault setup` without the platform uses."""

    return build(kv_mount, databases=defaults("postgres")["medai_postgres_databases"],
                 keycloak=defaults("keycloak"), harbor=defaults("harbor"), inference=defaults("inference"))


# ------------------------------------------------------------------------------------------------ generation


def ensure(cat: Catalogue, sink, k3s_token: Callable[[], str] | None = None) -> tuple[list[str], list[str]]:
    """Write every entry medai makes that the sink (Vault KV) lacks; (created, kept) paths, never a value.
    ``k3s_token``: the copy of the cluster's join token (written once, like the rest)."""
    created, kept = [], []
    for e in cat.entries:
        make = e.make
        if make is None and e.path == f"{K3S}/cluster-token" and k3s_token is not None:
            make = lambda: {"token": k3s_token()}  # noqa: E731
        if make is None:
            continue
        if sink.has_secret(e.path):
            kept.append(e.path)
            continue
        values = make()
        if set(values) != set(e.fields):
            raise ValueError(f"secrets catalogue: {e.path}: made fields {sorted(values)} != {sorted(e.fields)}")
        sink.put_secret(e.path, values)
        del values
        created.append(e.path)
    return created, kept


def secret_objects(cat: Catalogue, read: Callable[[str], Mapping[str, str]], bootstrap: bool = True) -> list[dict]:
    """The Kubernetes Secrets (in memory) the install applies; ``read(path)`` returns an entry's current data."""
    import base64

    cache: dict[str, Mapping[str, str]] = {}
    out = []
    for s in cat.secrets:
        if s.when == "bootstrap" and not bootstrap:
            continue
        data = {}
        for key, (path, fld) in s.keys.items():
            if path not in cache:
                cache[path] = read(path)
            data[key] = base64.b64encode(cache[path][fld].encode()).decode()
        out.append({"apiVersion": "v1", "kind": "Secret", "type": s.type,
                    "metadata": {"name": s.name, "namespace": s.namespace,
                                 "labels": {"app.kubernetes.io/managed-by": "medai"}},
                    "data": data})
    cache.clear()
    return out
