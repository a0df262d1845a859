"""The Kubernetes API as the control host's one client answers it (installer.platform.apply.KubeApi: list, get,
pods, events, read, apply, delete), from recorded responses: the tests' one stand-in at the API seam
(installer.deploy.platform_step.adapters).

Objects are held by reference (a test may change a recorded item in place before the code reads it); what is
applied replaces the object of that kind, namespace and name, and every write is recorded in ``calls``."""
from __future__ import annotations

import copy
from collections.abc import Iterable

from installer.core.errors import InstallError


def _ns_name(obj: dict) -> tuple[str | None, str]:
    md = obj.get("metadata") or {}
    return md.get("namespace"), md.get("name", "")


class RecordedKube:
    def __init__(self, lists: dict[tuple[str, str], Iterable[dict]] | None = None,
                 paths: dict[str, str] | None = None):
        """lists: (apiVersion, kind) -> the items of that kind's List response, every namespace together;
        a kind absent is one the API does not serve (a CRD not installed). paths: GET path -> body."""
        self.lists: dict[tuple[str, str], list[dict]] = {k: list(v) for k, v in (lists or {}).items()}
        self.paths = dict(paths or {})
        self.calls: list[tuple] = []
        self.applied: list[dict] = []

    def _items(self, api_version: str, kind: str) -> list[dict] | None:
        return self.lists.get((api_version, kind))

    def list(self, api_version, kind, namespace=None, optional=False):
        items = self._items(api_version, kind)
        if items is None:
            if optional:
                return None
            raise InstallError(f"list {api_version} {kind}: the API does not serve it")
        return [o for o in items if namespace is None or _ns_name(o)[0] == namespace]

    def get(self, api_version, kind, name, namespace):
        found = [o for o in self.list(api_version, kind, namespace, optional=True) or [] if _ns_name(o)[1] == name]
        return copy.deepcopy(found[0]) if found else None

    def pods(self, namespace):
        return self.list("v1", "Pod", namespace, optional=True) or []

    def events(self, namespace):
        return self.list("v1", "Event", namespace, optional=True) or []

    def read(self, path):
        if path not in self.paths:
            raise InstallError(f"GET {path}: HTTP 404 Not Found")
        return self.paths[path]

    def apply(self, obj):
        ns, name = _ns_name(obj)
        self.calls.append(("apply", obj["kind"], ns, name))
        self.applied.append(copy.deepcopy(obj))
        items = self.lists.setdefault((obj["apiVersion"], obj["kind"]), [])
        items[:] = [o for o in items if _ns_name(o) != (ns, name)] + [copy.deepcopy(obj)]

    def delete(self, api_version, kind, name, namespace):
        self.calls.append(("delete", kind, namespace, name))
        items = self.lists.get((api_version, kind))
        if items is not None:
            items[:] = [o for o in items if _ns_name(o) != (namespace, name)]
