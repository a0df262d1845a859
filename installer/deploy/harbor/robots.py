"""Harbor robot accounts with least privilege; their secrets come from the one catalogue (Vault), never output.

A system-level robot whose permissions name each project it may touch: ``cluster-pull`` may only pull (the
nodes' containerd), ``site-ci`` may push and pull in ``medical-ai`` only. Rerun: permissions are PUT when they
differ; the secret is kept unless the catalogue made a new one in this run (then it is set with PATCH).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from installer.deploy.harbor.client import HarborClient, HarborError

# Harbor's project-level RBAC resource/action names (src/common/rbac/const.go).
PULL = (("repository", "pull"), ("artifact", "read"))
PUSH = (("repository", "push"), ("repository", "pull"), ("artifact", "read"), ("artifact", "create"), ("tag", "create"))


@dataclass(frozen=True)
class RobotSpec:
    name: str
    projects: tuple[str, ...]
    access: tuple[tuple[str, str], ...]
    secret_path: str
    description: str = ""
    duration: int = -1  # days; -1 never expires (rotated through Vault instead)

    def permissions(self) -> list[dict]:
        return [{"kind": "project", "namespace": p,
                 "access": [{"resource": r, "action": a, "effect": "allow"} for r, a in self.access]}
                for p in self.projects]


@dataclass
class RobotResult:
    name: str
    action: str  # created | updated | unchanged | secret-reset
    secret_path: str = ""
    notes: list[str] = field(default_factory=list)


def _norm(perms: list[dict] | None) -> set[tuple]:
    out = set()
    for p in perms or []:
        for a in p.get("access") or []:
            out.add((p.get("kind"), p.get("namespace"), a.get("resource"), a.get("action"), a.get("effect") or "allow"))
    return out


def find_robot(client: HarborClient, name: str) -> dict | None:
    for r in client.get("/robots", params={"q": f"name={name}", "page_size": 100}).json() or []:
        # Harbor answers with the configured prefix ("robot$") in front of the name given at creation.
        if r.get("name") == name or str(r.get("name", "")).endswith("$" + name):
            return r
    return None


def ensure_robot(client: HarborClient, spec: RobotSpec, secret: str, reset: bool = False) -> RobotResult:
    """``secret``: the robot's password from the one catalogue (generated once into Vault, harbor/robots/<name>).
    A new robot gets it (sent on creation; set with PATCH when Harbor answers with a secret of its own). An existing
    robot keeps its secret unless ``reset`` (the catalogue entry was created in this run, so the robot's old
    secret is known to nobody): then the catalogue's is set with PATCH."""
    current = find_robot(client, spec.name)
    if current is None:
        body = {"name": spec.name, "description": spec.description, "level": "system", "disable": False,
                "duration": spec.duration, "permissions": spec.permissions(), "secret": secret}
        created = client.post("/robots", body).json()
        if "id" not in created:
            raise HarborError(f"POST /api/v2.0/robots: Harbor created robot {spec.name} but returned no id")
        if created.get("secret") != secret:
            client.patch(f"/robots/{created['id']}", {"secret": secret})
        return RobotResult(spec.name, "created", spec.secret_path)
    rid = current["id"]
    result = RobotResult(spec.name, "unchanged", spec.secret_path)
    if _norm(current.get("permissions")) != _norm(spec.permissions()) or current.get("disable"):
        body = {"name": current["name"], "description": spec.description, "level": current.get("level", "system"),
                "disable": False, "duration": current.get("duration", spec.duration), "permissions": spec.permissions()}
        client.put(f"/robots/{rid}", body)
        result.action = "updated"
    if reset:
        client.patch(f"/robots/{rid}", {"secret": secret})
        result.action = "secret-reset"
        result.notes.append("the catalogue's secret was new in this run: set on the existing robot")
    return result
