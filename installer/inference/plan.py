"""What `medai install` hands the inference role, from the verified bundle index (for the lead to wire in):

    extravars.update(inference_extravars(index, models))   # models: medai_inference_models from the inventory

The vLLM image digest comes from the index's image artifact (the digest the bundle lock pinned and the build
copied), the weight lists from the index's model artifacts (installer/inference/weights.py).
"""
from __future__ import annotations

from installer.errors import BundleError
from installer.inference.weights import weights_values

VLLM_REPOSITORY = "docker.io/vllm/vllm-openai"
DEFAULT_MODELS = [{"version": "v1", "bundleName": "mistral-7b-instruct-v0.3",
                   "servedModelName": "mistral-7b-instruct-v0.3", "replicas": 1}]


def vllm_digest(index: dict, repository: str = VLLM_REPOSITORY) -> str:
    found = sorted({a.get("digest") for a in index.get("artifacts", [])
                    if a.get("kind") == "image" and str(a.get("ref", "")).split("@")[0].rsplit(":", 1)[0] == repository
                    and a.get("digest")})
    if len(found) != 1:
        raise BundleError(f"index.json: {'no' if not found else 'more than one'} {repository} image "
                          f"({', '.join(found) or 'none'}): the inference tier needs exactly one")
    return found[0]


def inference_extravars(index: dict, models: list[dict] | None = None, repository: str = VLLM_REPOSITORY) -> dict:
    models = models or DEFAULT_MODELS
    return {"medai_inference_image_digest": vllm_digest(index, repository),
            "medai_inference_weights": weights_values(index, {m["version"]: m["bundleName"] for m in models})}
