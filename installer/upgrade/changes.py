"""What an upgrade changes, worked out from the installed bundle's index and the new one (control host only).

K3s version (from the k3s binary's release URL), each chart's version and values (manifest.yaml), images
added and removed (by reference and digest), models, OS package repositories and staged files.
"""
from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field

import yaml

from installer.bundle.artifacts import BundleIndex

K3S_VERSION = re.compile(r"v(\d+)\.(\d+)\.(\d+)(?:\+k3s(\d+))?")


def k3s_version(index: dict) -> str | None:
    """'v1.34.2+k3s1' from the k3s file artifact (its release URL, or meta.version)."""
    a = BundleIndex.of(index).named("file", "k3s")
    if a is None:
        return None
    m = K3S_VERSION.search(a.meta.get("version") or urllib.parse.unquote(a.ref))
    return m.group(0) if m else None


def _by(index: dict, kind: str) -> dict[str, dict]:
    return {a.name: a.to_json() for a in BundleIndex.of(index).artifacts(kind)}


def chart_values(manifest_yaml: str | None) -> dict[str, dict]:
    if not manifest_yaml:
        return {}
    doc = yaml.safe_load(manifest_yaml) or {}
    return {c["name"]: c.get("values") or {} for c in (doc.get("spec") or {}).get("charts") or []}


@dataclass
class ChangeList:
    k3s: tuple[str | None, str | None] = (None, None)
    charts: list[dict] = field(default_factory=list)       # {name, from, to, valuesChanged}
    images_added: list[str] = field(default_factory=list)
    images_removed: list[str] = field(default_factory=list)
    models: list[dict] = field(default_factory=list)       # {name, from, to}
    os_packages: list[dict] = field(default_factory=list)
    files: list[dict] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.k3s[0] == self.k3s[1] and not any(
            (self.charts, self.images_added, self.images_removed, self.models, self.os_packages, self.files))

    def to_json(self) -> dict:
        return {"k3s": {"from": self.k3s[0], "to": self.k3s[1]}, "charts": self.charts,
                "imagesAdded": self.images_added, "imagesRemoved": self.images_removed, "models": self.models,
                "osPackages": self.os_packages, "files": self.files}

    def lines(self) -> list[str]:
        out = []
        if self.k3s[0] != self.k3s[1]:
            out.append(f"K3s {self.k3s[0]} -> {self.k3s[1]}")
        for c in self.charts:
            v = "" if c["from"] == c["to"] else f" {c['from']} -> {c['to']}"
            out.append(f"chart {c['name']}{v}{' (values changed)' if c['valuesChanged'] else ''}")
        out += [f"image added {r}" for r in self.images_added] + [f"image removed {r}" for r in self.images_removed]
        out += [f"model {m['name']}: {m['from']} -> {m['to']}" for m in self.models]
        out += [f"OS packages {p['name']}: {p['change']}" for p in self.os_packages]
        out += [f"file {f['name']}: {f['change']}" for f in self.files]
        return out or ["no change"]


def _diff_named(old: dict[str, dict], new: dict[str, dict], key: str) -> list[dict]:
    out = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        if a is None:
            out.append({"name": name, "change": "added", "to": b.get(key)})
        elif b is None:
            out.append({"name": name, "change": "removed", "from": a.get(key)})
        elif a.get(key) != b.get(key):
            out.append({"name": name, "change": "changed", "from": a.get(key), "to": b.get(key)})
    return out


def change_list(old: dict, new: dict, old_manifest: str | None = None, new_manifest: str | None = None) -> ChangeList:
    cl = ChangeList(k3s=(k3s_version(old), k3s_version(new)))
    oc, nc = _by(old, "chart"), _by(new, "chart")
    ov, nv = chart_values(old_manifest), chart_values(new_manifest)
    for name in sorted(set(oc) | set(nc)):
        a, b = (oc.get(name) or {}).get("meta") or {}, (nc.get(name) or {}).get("meta") or {}
        frm, to = a.get("version") if name in oc else None, b.get("version") if name in nc else None
        changed = ov.get(name) != nv.get(name)
        if frm != to or changed:
            cl.charts.append({"name": name, "from": frm, "to": to, "valuesChanged": changed})
    oi = {f"{a.ref}@{a.digest}" for a in BundleIndex.of(old).images()}
    ni = {f"{a.ref}@{a.digest}" for a in BundleIndex.of(new).images()}
    cl.images_added, cl.images_removed = sorted(ni - oi), sorted(oi - ni)
    for m in _diff_named(_by(old, "model"), _by(new, "model"), "sha256"):
        cl.models.append({"name": m["name"], "from": m.get("from"), "to": m.get("to")})
    cl.os_packages = _diff_named(_by(old, "ospkgs"), _by(new, "ospkgs"), "sha256")
    cl.files = _diff_named(_by(old, "file"), _by(new, "file"), "sha256")
    return cl
