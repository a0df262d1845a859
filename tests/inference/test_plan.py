"""installer/inference/plan.py: the role's inputs from an index."""
from __future__ import annotations

import json

import pytest

from installer.core.errors import BundleError
from installer.inference.plan import inference_extravars

D = "sha256:" + "cd" * 32


def _index(images):
    return {"artifacts": [*({"kind": "image", "ref": r, "digest": d} for r, d in images),
                          {"kind": "model", "name": "m", "path": "models/m", "paths": ["models/m/config.json"]}],
            "files": [{"path": "models/m/config.json", "size": 2, "sha256": "e" * 64}]}


def test_digest_and_weights_from_the_index():
    ev = inference_extravars(_index([("docker.io/vllm/vllm-openai:v0.11.0", D), ("docker.io/library/nginx:1", "sha256:" + "0" * 64)]),
                             [{"version": "v1", "bundleName": "m"}])
    assert ev["medai_inference_image_digest"] == D
    assert json.loads(ev["medai_inference_weights"]["v1"])["files"][0]["path"] == "models/m/config.json"


def test_missing_image_or_model_is_a_bundle_error():
    with pytest.raises(BundleError, match="no docker.io/vllm/vllm-openai image"):
        inference_extravars(_index([]), [{"version": "v1", "bundleName": "m"}])
    with pytest.raises(BundleError, match="model nope: not in the index"):
        inference_extravars(_index([("docker.io/vllm/vllm-openai:v0.11.0", D)]), [{"version": "v1", "bundleName": "nope"}])
