"""The weight list the chart's init container checks: model NAME's entries cut from the verified bundle index.

The output keeps index.json's own schema (``artifacts`` with the one model, ``files`` with its files), so the
checker in the pod (installer/trust/model_check.py, copied into the chart) reads it exactly as it reads a full
index. Only call this with an index whose signature was checked (``installer.trust.verify``).
"""
from __future__ import annotations

import json

from installer.bundle.artifacts import BundleIndex
from installer.core.errors import BundleError
from installer.trust.model_check import ModelIndexError, expected_files


def model_weights_index(index: dict, name: str) -> dict:
    try:
        expected_files(index, name)  # the same consistency checks the pod will apply
    except ModelIndexError as e:
        raise BundleError(f"index.json: {e}") from None
    model = BundleIndex.of(index).named("model", name).to_json()
    paths = set(model["paths"])
    files = [{"path": f["path"], "size": f["size"], "sha256": f["sha256"]}
             for f in index["files"] if f.get("path") in paths]
    art = {k: model[k] for k in ("kind", "name", "ref", "path", "paths")}
    return {"artifacts": [art], "files": sorted(files, key=lambda f: f["path"])}


def weights_values(index: dict, versions: dict[str, str]) -> dict[str, str]:
    """{version: bundle model name} -> the chart's ``weights`` value ({version: compact JSON})."""
    return {v: json.dumps(model_weights_index(index, name), separators=(",", ":"), sort_keys=True)
            for v, name in sorted(versions.items())}
