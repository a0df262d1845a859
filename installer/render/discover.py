"""Find every image reference in rendered Kubernetes objects, and say where each one is.

Every string counts, not only ``containers[].image``: operators start images named in args (Longhorn's
``--engine-image``), env values (its CSI sidecars), ConfigMap data and custom-resource fields. Three readings:

- container image fields (``...containers[N].image``): must be a reference; a malformed one is an error;
- any other field named ``image`` and any ``{repository, tag[, registry]}`` mapping: read as one reference;
- every other string: searched word by word with :func:`installer.oci.refs.refs_in_text`.

CustomResourceDefinitions are not searched: their schemas' descriptions quote example references, and a CRD
starts nothing.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from installer.core.errors import RegistryError
from installer.oci.refs import ImageRef, parse_ref, refs_in_text
from installer.render.errors import ImageGateError

CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")
_NOT_SEARCHED_KINDS = {"CustomResourceDefinition"}


@dataclass(frozen=True)
class Finding:
    """One image reference at one place in the rendered output."""

    ref: ImageRef
    chart: str
    kind: str
    name: str
    path: str  # field path inside the object, e.g. spec.template.spec.containers[0].env[2].value
    how: str  # 'container' | 'field' | 'text'

    @property
    def where(self) -> str:
        return f"chart {self.chart}, {self.kind} {self.name}, {self.path}"


def _join(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _walk(node: Any, path: str, parent_key: Any, grandparent_key: Any) -> Iterator[tuple[str, str, str]]:
    """(path, string, how) for every string in node."""
    if isinstance(node, dict):
        repo, tag = node.get("repository"), node.get("tag")
        if isinstance(repo, str) and isinstance(tag, (str, int, float)) and repo and str(tag):
            registry = node.get("registry")
            full = f"{registry.rstrip('/')}/{repo}" if isinstance(registry, str) and registry else repo
            digest = node.get("digest")
            text = f"{full}:{tag}" + (f"@{digest}" if isinstance(digest, str) and digest.startswith("sha256:") else "")
            yield path, text, "field"
        for k, v in node.items():
            yield from _walk(v, _join(path, k), k, parent_key)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, _join(path, i), i, parent_key)
    elif isinstance(node, str):
        if parent_key == "image":
            # containers[N].image: grandparent is the list index, so look at the path instead
            how = "container" if _in_container_list(path) else "field"
            yield path, node, how
        else:
            yield path, node, "text"


def _in_container_list(path: str) -> bool:
    head = path.rsplit(".", 1)[0]  # ...containers[0]
    return head.endswith("]") and head.rsplit("[", 1)[0].rsplit(".", 1)[-1] in CONTAINER_LISTS


def _objects(doc: Any) -> Iterator[dict]:
    if not isinstance(doc, dict):
        return
    if isinstance(doc.get("items"), list) and str(doc.get("kind", "")).endswith("List"):
        for item in doc["items"]:
            yield from _objects(item)
        return
    yield doc


def findings_in_object(doc: dict, chart: str) -> list[Finding]:
    """Every image reference in one object (List kinds walked). Raises ImageGateError on a malformed container image."""
    out: list[Finding] = []
    for obj in _objects(doc):
        kind = str(obj.get("kind") or "?")
        if kind in _NOT_SEARCHED_KINDS:
            continue
        name = str((obj.get("metadata") or {}).get("name") or "?")
        for path, text, how in _walk(obj, "", None, None):
            if how == "text":
                for ref in refs_in_text(text):
                    out.append(Finding(ref, chart, kind, name, path, how))
                continue
            if not text.strip():
                if how == "container":
                    raise ImageGateError(f"chart {chart}, {kind} {name}, {path}: empty image")
                continue
            try:
                ref = parse_ref(text)
            except RegistryError as e:
                if how == "container":
                    raise ImageGateError(f"chart {chart}, {kind} {name}, {path}: {e}") from None
                out.extend(Finding(r, chart, kind, name, path, "text") for r in refs_in_text(text))
                continue
            out.append(Finding(ref, chart, kind, name, path, how))
    return out


def find_images(rendered: dict[str, list[dict]]) -> list[Finding]:
    """{chart name: rendered objects} -> every finding, in output order."""
    out: list[Finding] = []
    for chart, docs in rendered.items():
        for doc in docs:
            out.extend(findings_in_object(doc, chart))
    return out
