"""What `medai install` hands the gpu and inference roles and the medai-inference release, from the verified
bundle index (:func:`install_extravars`):

The vLLM image digest comes from the index's image artifact (the platform manifest the build carries for the site's
platform, which the site registry serves: docs/bundle.md), the weight lists from the index's model artifacts
(installer/inference/weights.py).
"""
from __future__ import annotations

from installer.bundle.artifacts import BundleIndex
from installer.core.errors import BundleError
from installer.inference.weights import weights_values

VLLM_REPOSITORY = "docker.io/vllm/vllm-openai"
DEFAULT_MODELS = [{"version": "v1", "bundleName": "mistral-7b-instruct-v0.3",
                   "servedModelName": "mistral-7b-instruct-v0.3", "replicas": 1}]


def vllm_digest(index: dict, repository: str = VLLM_REPOSITORY) -> str:
    idx = BundleIndex.of(index)
    found = sorted({a.pinned_digest(idx.site_platform) for a in idx.images(repository) if a.digest})
    if len(found) != 1:
        raise BundleError(f"index.json: {'no' if not found else 'more than one'} {repository} image "
                          f"({', '.join(found) or 'none'}): the inference tier needs exactly one")
    return found[0]


def inference_extravars(index: dict, models: list[dict] | None = None, repository: str = VLLM_REPOSITORY) -> dict:
    models = models or DEFAULT_MODELS
    return {"medai_inference_image_digest": vllm_digest(index, repository),
            "medai_inference_weights": weights_values(index, {m["version"]: m["bundleName"] for m in models})}


def bundle_has_gpu_driver(index: dict) -> bool:
    """Does an OS repository of the bundle carry a gpu package group (the NVIDIA driver and toolkit)?"""
    return any((a.meta.get("groups") or {}).get("gpu") for a in BundleIndex.of(index).artifacts("ospkgs"))


def install_extravars(index: dict, inv) -> dict:
    """medai_gpu_bundle_driver always; the inference variables when the site has GPU hosts and the bundle the
    vLLM image (a lab bundle has neither; a GPU site whose bundle lacks the image is refused by inference_extravars)."""
    out: dict = {"medai_gpu_bundle_driver": bundle_has_gpu_driver(index)}
    if inv.gpu and (bundle_has_gpu_driver(index) or _has_image(index, VLLM_REPOSITORY)):
        out.update(inference_extravars(index, getattr(inv.site, "medai_inference_models", None)))
    return out


def _has_image(index: dict, repository: str) -> bool:
    return bool(BundleIndex.of(index).images(repository))
