"""Site inventory: an Ansible YAML inventory with groups servers / agents / gpu and medai_* site vars.

    all:
      vars: {medai_cluster_name: ..., medai_metallb_pool: ..., medai_api_vip: ...}
      children:
        servers: {hosts: {srv1: {ansible_host: 10.0.0.11}}}
        agents:  {hosts: {gpu1: {ansible_host: 10.0.0.21}}}
        gpu:     {hosts: {gpu1: {}}}

``load_inventory`` checks everything and raises one InventoryError listing every problem, one per line,
each naming the file, the host or group and the field. Nothing contacts a host.
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyrage
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pyrage import x25519

from installer.core.errors import InventoryError
from installer.core.yamldoc import field_path, read_yaml
from installer.platform.components import vault

ROLE_GROUPS = ("servers", "agents")
KNOWN_GROUPS = ("servers", "agents", "gpu")
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")

IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressPool:
    """A MetalLB pool written as a CIDR (10.0.0.0/28) or a range (10.0.0.200-10.0.0.220)."""

    def __init__(self, text: str):
        self.text = text.strip()
        if "-" in self.text:
            lo, _, hi = self.text.partition("-")
            self.first = ipaddress.ip_address(lo.strip())
            self.last = ipaddress.ip_address(hi.strip())
            if self.first.version != self.last.version:
                raise ValueError(f"{text!r}: range mixes IPv4 and IPv6")
            if int(self.first) > int(self.last):
                raise ValueError(f"{text!r}: range start is after its end")
        else:
            net = ipaddress.ip_network(self.text, strict=True)
            self.first, self.last = net[0], net[-1]

    def __contains__(self, addr: IPAddr) -> bool:
        return addr.version == self.first.version and int(self.first) <= int(addr) <= int(self.last)

    def __str__(self) -> str:
        return self.text


class SiteVars(BaseModel):
    """The site-wide vars medai reads (all.vars). Other vars (role tunables, ansible_*) pass through."""

    model_config = ConfigDict(extra="allow")

    medai_cluster_name: str = Field(description="DNS label naming the cluster; names state files and the kubeconfig")
    medai_metallb_pool: str = Field(description="MetalLB address pool: CIDR or FIRST-LAST range")
    medai_api_vip: str | None = Field(default=None, description="an address the site's own load balancer holds for the API (optional)")
    medai_keycloak_hostname: str = Field(description="Keycloak's DNS name: its login URL (KC_HOSTNAME), certificate "
                                         "name and the OIDC issuer Harbor and the site's clients use")
    medai_tls_san: list[str] = Field(default_factory=list, description="extra names/IPs in the API server certificate")
    medai_bundle_dir: str | None = Field(default=None, description="bundle directory on the control host (--bundle overrides)")
    medai_ssh_host_key_checking: bool = Field(default=True, description="verify SSH host keys (only a throwaway lab turns this off)")
    # They reach kubectl command lines in roles/vault (quoted there too): names only, never shell text.
    medai_vault_namespace: str = Field(default=vault.DEFAULTS["medai_vault_namespace"],
                                       description="Kubernetes namespace of Vault (a DNS label)")
    medai_vault_tls_secret: str = Field(default=vault.DEFAULTS["medai_vault_tls_secret"],
                                        description="Vault's TLS Secret name (a DNS subdomain)")

    medai_backup_recipients: list[str] = Field(default_factory=list, description="age X25519 recipients (age1...) "
                                               "every backup file is encrypted to; each operator decrypts alone")

    @field_validator("medai_backup_recipients")
    @classmethod
    def _backup_recipients(cls, v: list[str]) -> list[str]:
        for r in v:
            try:
                x25519.Recipient.from_str(str(r))
            except (pyrage.RecipientError, ValueError):
                raise ValueError(f"{str(r)[:80]!r} is not an age X25519 recipient (age1...)") from None
        return v

    @field_validator("medai_cluster_name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _DNS_LABEL.match(v):
            raise ValueError(f"{v!r} must be a DNS label (lower-case letters, digits, '-', at most 63)")
        return v

    @field_validator("medai_vault_namespace")
    @classmethod
    def _vault_ns(cls, v: str) -> str:
        if not _DNS_LABEL.match(v):
            raise ValueError(f"{v!r} must be a Kubernetes namespace: a DNS label (lower-case letters, digits, '-', "
                             "at most 63)")
        return v

    @field_validator("medai_vault_tls_secret")
    @classmethod
    def _vault_secret(cls, v: str) -> str:
        if len(v) > 253 or not all(_DNS_LABEL.match(part) for part in v.split(".")):
            raise ValueError(f"{v!r} must be a Kubernetes Secret name: a DNS subdomain (lower-case letters, digits, "
                             "'-', '.', at most 253)")
        return v

    @field_validator("medai_metallb_pool")
    @classmethod
    def _pool(cls, v: str) -> str:
        try:
            AddressPool(v)
        except ValueError as e:
            raise ValueError(f"{v!r} is not a CIDR or FIRST-LAST address range ({e})") from None
        return v

    @field_validator("medai_api_vip")
    @classmethod
    def _vip(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                ipaddress.ip_address(v)
            except ValueError:
                raise ValueError(f"{v!r} is not an IP address") from None
        return v

    @field_validator("medai_keycloak_hostname")
    @classmethod
    def _keycloak_host(cls, v: str) -> str:
        if not _HOSTNAME.match(v) or _is_ip(v) or "." not in v:
            raise ValueError(f"{v!r} must be a fully qualified host name (e.g. keycloak.radiology.internal)")
        return v

    @field_validator("medai_tls_san")
    @classmethod
    def _san(cls, v: list[str]) -> list[str]:
        for s in v:
            if not (_HOSTNAME.match(s) or _is_ip(s)):
                raise ValueError(f"{s!r} is neither a host name nor an IP address")
        return v

    @property
    def pool(self) -> AddressPool:
        return AddressPool(self.medai_metallb_pool)


def _is_ip(s: str) -> bool:
    try:
        ipaddress.ip_address(s)
        return True
    except ValueError:
        return False


@dataclass
class Host:
    name: str
    address: str
    groups: list[str] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)

    @property
    def ip(self) -> IPAddr | None:
        try:
            return ipaddress.ip_address(self.address)
        except ValueError:
            return None


@dataclass
class Inventory:
    path: Path
    site: SiteVars
    hosts: dict[str, Host]
    servers: list[str]
    agents: list[str]
    gpu: list[str]

    @property
    def cluster(self) -> str:
        return self.site.medai_cluster_name

    @property
    def first_server(self) -> Host:
        return self.hosts[self.servers[0]]

    @property
    def api_address(self) -> str:
        """What the control host's kubeconfig uses: medai_api_vip where the site's load balancer holds one, else
        the first server (docs/platform.md, "The API address": failover to another server)."""
        return self.site.medai_api_vip or self.first_server.address

    def group_of(self, name: str) -> list[str]:
        return self.hosts[name].groups


def _mapping(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _control_chars(value, where: str):
    """(path, value) of every string under ``value`` (medai_*/ansible_* keys; ansible_host has its own, stricter
    check below) with a control character in it."""
    if isinstance(value, dict):
        for k, v in value.items():
            if where.count(".") > 1 or (str(k).startswith(("medai_", "ansible_")) and k != "ansible_host"):
                yield from _control_chars(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _control_chars(v, f"{where}[{i}]")
    elif isinstance(value, str) and any(ord(c) < 32 or ord(c) == 127 for c in value):
        yield where, value


Problem = Callable[[str, str], None]  # bad(where, message): one line of the refusal


def _top_level(doc: dict, bad: Problem) -> None:
    root = doc["all"]
    for key in root:
        if key not in ("vars", "children", "hosts"):
            bad(f"all.{key}", "unknown key (expected vars, children, hosts)")
    for name in _mapping(root.get("hosts")):
        bad(f"all.hosts.{name}", "host is in no group: put it under servers or agents")
    for key in doc:
        if key != "all":
            bad(key, "unknown top-level key: everything belongs under 'all'")


def _group_hosts(group: str, body, bad: Problem) -> dict:
    """A known group's hosts mapping ({} when the group's shape is wrong, which is reported)."""
    body = body or {}
    if not isinstance(body, dict):
        bad(f"all.children.{group}", "must be a mapping with 'hosts'")
        return {}
    for key in body:
        if key not in ("hosts", "vars"):
            bad(f"all.children.{group}.{key}", "unknown key (expected hosts, vars)")
    hosts = body.get("hosts") or {}
    if not isinstance(hosts, dict):
        bad(f"all.children.{group}.hosts", "must be a mapping of host names")
        return {}
    return hosts


def _groups(children, bad: Problem) -> tuple[dict[str, list[str]], dict[str, dict]]:
    """Each known group's members, and every host's variables merged over its groups."""
    if not isinstance(children, dict):
        bad("all.children", "must be a mapping of group names")
        children = {}
    members: dict[str, list[str]] = {g: [] for g in KNOWN_GROUPS}
    hostvars: dict[str, dict] = {}
    for group, body in children.items():
        if group not in KNOWN_GROUPS:
            bad(f"all.children.{group}", f"unknown group (known: {', '.join(KNOWN_GROUPS)})")
            continue
        for name, hv in _group_hosts(group, body, bad).items():
            name = str(name)
            if not _HOSTNAME.match(name):
                bad(f"{group}.{name}", "host name has characters Ansible does not accept")
            if hv is not None and not isinstance(hv, dict):
                bad(f"{group}.{name}", "host vars must be a mapping")
                hv = {}
            members[group].append(name)
            merged = hostvars.setdefault(name, {})
            for k, v in (hv or {}).items():
                if k in merged and merged[k] != v:
                    bad(f"{group}.{name}.{k}", f"set to {v!r} here and {merged[k]!r} in another group")
                merged[k] = v
    return members, hostvars


def _roles(members: dict[str, list[str]], bad: Problem) -> None:
    """Each host once per group; 1 or an odd number of servers; a node is a server or an agent; GPU hosts are agents."""
    servers, agents = members["servers"], members["agents"]
    for group in KNOWN_GROUPS:
        seen: set[str] = set()
        for name in members[group]:
            if name in seen:
                bad(f"{group}.{name}", "host listed twice in the group")
            seen.add(name)
    if not servers:
        bad("servers", "no servers: the cluster needs 1 or an odd number >= 3 of servers")
    elif len(set(servers)) % 2 == 0:
        bad("servers", f"{len(set(servers))} servers: embedded etcd needs 1 or an odd number >= 3 (quorum)")
    for name in sorted(set(servers) & set(agents)):
        bad(f"agents.{name}", "host is in both servers and agents (a node has one role)")
    for name in members["gpu"]:
        if name not in agents:
            bad(f"gpu.{name}", "gpu host is not in agents (GPU nodes are agents)")


def _addresses(members: dict[str, list[str]], hosts: dict[str, Host], bad: Problem) -> None:
    """Every node's address is an IP address or a host name, and no two nodes share one."""
    by_addr: dict[str, str] = {}
    for name in [*members["servers"], *members["agents"]]:
        h = hosts.get(name)
        if h is None or name in by_addr.values():
            continue
        if not (_is_ip(h.address) or _HOSTNAME.match(h.address)):
            # it lands in K3s's config (server:, tls-san) and on SSH command lines: an address or a name only
            bad(f"{h.groups[0]}.{name}.ansible_host", f"{h.address!r} is neither an IP address nor a host name")
            continue
        key = str(h.ip) if h.ip else h.address.lower()
        if key in by_addr:
            bad(f"{h.groups[0]}.{name}.ansible_host", f"address {h.address} is also used by {by_addr[key]}")
        else:
            by_addr[key] = name


def _site_vars(vars_, hostvars: dict[str, dict], bad: Problem) -> SiteVars | None:
    """all.vars validated by the SiteVars model (one line per field), with no control character in any value."""
    if not isinstance(vars_, dict):
        bad("all.vars", "must be a mapping")
        vars_ = {}
    for where, value in [*_control_chars(vars_, "all.vars"),
                         *(hit for name, hv in hostvars.items() for hit in _control_chars(hv, f"hosts.{name}"))]:
        bad(where, f"{value!r} holds a control character (newline, tab, NUL...): inventory values reach config "
                   "files and command lines as data, one line each")
    try:
        return SiteVars.model_validate(vars_)
    except ValidationError as e:
        for err in e.errors():
            field_ = field_path(err["loc"])
            msg = "required site var is missing" if err["type"] == "missing" else err["msg"].removeprefix("Value error, ")
            bad(f"all.vars.{field_}", msg)
    return None


def _outside_the_pool(site: SiteVars, hosts: dict[str, Host], bad: Problem) -> None:
    """Neither the API VIP nor any node address lies in MetalLB's pool; no node holds the VIP."""
    pool = site.pool
    vip = ipaddress.ip_address(site.medai_api_vip) if site.medai_api_vip else None
    if vip is not None and vip in pool:
        bad("all.vars.medai_api_vip", f"{vip} lies inside medai_metallb_pool {pool}")
    for name, h in hosts.items():
        if h.ip is None:
            continue
        if h.ip in pool:
            bad(f"{h.groups[0]}.{name}.ansible_host", f"{h.ip} lies inside medai_metallb_pool {pool}")
        if vip is not None and h.ip == vip:
            bad(f"{h.groups[0]}.{name}.ansible_host", f"{h.ip} is the API VIP (medai_api_vip)")


def load_inventory(path: str | Path) -> Inventory:
    """Parse and check; raise InventoryError listing every problem (one line each), each rule one function above."""
    p = Path(path)
    doc = read_yaml(p, InventoryError, "inventory file")
    problems: list[str] = []

    def bad(where: str, msg: str) -> None:
        problems.append(f"{p}: {where}: {msg}")

    if not isinstance(doc, dict) or not isinstance(doc.get("all"), dict):
        raise InventoryError(f"{p}: all: an Ansible YAML inventory must start with an 'all' mapping")
    _top_level(doc, bad)
    members, hostvars = _groups(doc["all"].get("children") or {}, bad)
    _roles(members, bad)
    hosts = {name: Host(name=name, address=str(hv.get("ansible_host") or name),
                        groups=[g for g in KNOWN_GROUPS if name in members[g]], vars=hv)
             for name, hv in hostvars.items()}
    _addresses(members, hosts, bad)
    site = _site_vars(doc["all"].get("vars") or {}, hostvars, bad)
    if site is not None:
        _outside_the_pool(site, hosts, bad)
    if problems:
        raise InventoryError("\n".join(problems))
    assert site is not None
    return Inventory(path=p.resolve(), site=site, hosts=hosts, servers=members["servers"], agents=members["agents"],
                     gpu=members["gpu"])
