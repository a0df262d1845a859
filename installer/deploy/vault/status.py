"""Seal state per member, the leader, and (with a token) the Raft peers: what the 2 a.m. operator looks at."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import hvac.exceptions
import requests

from installer.deploy.vault.client import Endpoint


@dataclass
class MemberStatus:
    name: str
    addr: str
    reachable: bool
    initialized: bool | None = None
    sealed: bool | None = None
    progress: int | None = None
    threshold: int | None = None
    version: str | None = None
    is_leader: bool | None = None
    leader_address: str | None = None
    error: str | None = None


@dataclass
class ClusterStatus:
    members: list[MemberStatus]
    peers: list[dict] = field(default_factory=list)
    peers_error: str | None = None

    @property
    def leader(self) -> str | None:
        for m in self.members:
            if m.is_leader:
                return m.name
        return next((m.leader_address for m in self.members if m.leader_address), None)

    def as_dict(self) -> dict:
        return {"members": [asdict(m) for m in self.members], "leader": self.leader,
                "peers": self.peers, "peersError": self.peers_error}


def member_status(ep: Endpoint) -> MemberStatus:
    client = ep.client()
    try:
        seal = client.sys.read_seal_status()
    except (hvac.exceptions.VaultError, requests.exceptions.RequestException) as e:
        return MemberStatus(ep.name, ep.addr, False, error=(str(e).splitlines() or [type(e).__name__])[0][:200])
    m = MemberStatus(ep.name, ep.addr, True, seal.get("initialized"), seal.get("sealed"), seal.get("progress"),
                     seal.get("t"), seal.get("version"))
    if not m.sealed:
        try:
            leader = client.sys.read_leader_status()
            m.is_leader = bool(leader.get("is_self"))
            m.leader_address = leader.get("leader_address") or None
        except (hvac.exceptions.VaultError, requests.exceptions.RequestException):
            pass
    return m


def cluster_status(eps: list[Endpoint], token: str | None = None) -> ClusterStatus:
    cs = ClusterStatus([member_status(ep) for ep in eps])
    if not token:
        cs.peers_error = "Raft peers need a token (--token-stdin)"
        return cs
    for ep, m in zip(eps, cs.members):
        if m.reachable and not m.sealed:
            try:
                cfg = ep.client(token).sys.read_raft_config()
                cs.peers = [{"id": s.get("node_id"), "address": s.get("address"), "leader": s.get("leader"),
                             "voter": s.get("voter")} for s in cfg["data"]["config"]["servers"]]
                cs.peers_error = None
            except (hvac.exceptions.VaultError, requests.exceptions.RequestException) as e:
                cs.peers_error = (str(e).splitlines() or [type(e).__name__])[0][:200]
            break
    else:
        cs.peers_error = "no unsealed member to ask"
    return cs
