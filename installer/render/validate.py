"""Strict validation of every rendered object before anything is applied.

Core kinds: kubernetes-validate's strict schemas (unknown fields refused, as the API server's
``fieldValidation=Strict`` does) at the bundled Kubernetes version. kubernetes-validate ships one schema set per
minor version, so 1.34.2 is checked against its 1.34 schemas; :func:`schema_version` says which was used.
Custom resources: the OpenAPI v3 schema of the CRD that the bundle's charts ship, with the same strictness
(unknown fields refused unless the schema preserves them). A kind with neither is refused: nothing the
install applies goes unchecked.
"""
from __future__ import annotations

import copy
import functools
import re
from collections.abc import Iterable
from typing import Any

import jsonschema
import kubernetes_validate
from kubernetes_validate import utils as kv_utils
from referencing import Registry, Resource

from installer.render.errors import RenderError


def schema_version(kube_version: str) -> str:
    """The kubernetes-validate schema set used for a Kubernetes version: the newest one not newer than it."""
    want = tuple(int(x) for x in kube_version.lstrip("v").split(".")[:2])
    have = [v for v in kv_utils.all_versions() if tuple(int(x) for x in v.split(".")[:2]) <= want]
    if not have:
        raise RenderError(f"kubernetes-validate {kubernetes_validate.__version__} has no schemas for Kubernetes "
                          f"{kube_version} or older")
    return have[-1]


@functools.cache
def _core_validator(version: str, api_version: str, kind: str) -> jsonschema.Draft202012Validator | None:
    """kubernetes-validate's strict schema for one kind, loaded once (its validate() rereads the files per object)."""
    api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    folder = f"kubernetes-json-schema/v{version}-local-strict"
    try:
        schema = kv_utils.schema_contents(f"{folder}/{kind.lower()}-{api}.json", version)
    except FileNotFoundError:
        return None
    definitions = kv_utils.schema_contents(f"{folder}/_definitions.json", version)
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _group(api_version: str) -> str:
    return api_version.split("/", 1)[0] if "/" in api_version else ""


def _strict(schema: Any) -> Any:
    """An OpenAPI v3 (structural) schema as JSON Schema: nullable honoured, unknown fields refused where the schema
    lists properties and neither preserves unknown fields nor allows additional properties."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if out.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def crd_schemas(objects: Iterable[dict]) -> dict[tuple[str, str, str], dict]:
    """(group, version, kind) -> JSON Schema, from the CustomResourceDefinitions among the objects."""
    out: dict[tuple[str, str, str], dict] = {}
    for o in objects:
        if o.get("kind") != "CustomResourceDefinition":
            continue
        spec = o.get("spec") or {}
        group, kind = spec.get("group", ""), (spec.get("names") or {}).get("kind", "")
        for v in spec.get("versions") or []:
            schema = ((v.get("schema") or {}).get("openAPIV3Schema")) or {"type": "object",
                                                                          "x-kubernetes-preserve-unknown-fields": True}
            schema = _strict(copy.deepcopy(schema))
            props = schema.setdefault("properties", {})
            props.setdefault("apiVersion", {"type": "string"})
            props.setdefault("kind", {"type": "string"})
            props["metadata"] = {"type": "object"}
            out[(group, v.get("name", ""), kind)] = schema
    return out


def _path(error: jsonschema.ValidationError) -> str:
    out = ""
    for p in error.absolute_path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _best(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    return jsonschema.exceptions.best_match([error]) if error.context else error


def validate_object(release: str, obj: dict, kube_version: str, crds: dict[tuple[str, str, str], dict]) -> str:
    """Validate one object; returns 'core' or 'crd'. RenderError names release, kind, name and field."""
    kind = obj.get("kind")
    api = obj.get("apiVersion")
    name = (obj.get("metadata") or {}).get("name", "?")
    where = f"release {release}, {kind} {name}"
    if not isinstance(kind, str) or not isinstance(api, str):
        raise RenderError(f"release {release}: an object without apiVersion/kind (metadata.name {name})")
    key = (_group(api), api.rsplit("/", 1)[-1], kind)
    if key in crds:
        errors = sorted(jsonschema.Draft202012Validator(crds[key]).iter_errors(obj), key=lambda e: list(e.absolute_path))
        if errors:
            e = _best(errors[0])
            raise RenderError(f"{where}: {_path(e)}: {e.message} (schema of CRD {kind}.{key[0]} {key[1]})")
        return "crd"
    version = schema_version(kube_version)
    validator = _core_validator(version, api, kind)
    if validator is None:
        raise RenderError(f"{where}: {api} {kind} is neither a Kubernetes {version} kind nor defined by a CRD the "
                          "bundle's charts ship")
    errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
    if errors:
        e = _best(errors[0])
        raise RenderError(f"{where}: {_path(e)}: {e.message} (Kubernetes {version} schema, strict)")
    return "core"


def validate_release(release: str, objects: list[dict], kube_version: str,
                     crds: dict[tuple[str, str, str], dict]) -> dict[str, int]:
    """Validate every object of one release; {'core': n, 'crd': m}."""
    counts = {"core": 0, "crd": 0}
    for obj in objects:
        counts[validate_object(release, obj, kube_version, crds)] += 1
    return counts
