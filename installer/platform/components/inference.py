"""The project's vLLM chart (charts/medai-inference): one Deployment per model version side by side, the Service
selecting the active one; image digest and weight lists from the verified bundle index."""
from __future__ import annotations

from installer.platform.flows import SITE, Flow, dns

NAME = "inference"
NAMESPACE = "medai-inference"
DEFAULTS = {
    "medai_inference_namespace": "medai-inference",
    "medai_inference_image_repository": "docker.io/vllm/vllm-openai",
    "medai_inference_image_tag": "v0.11.0",
    "medai_inference_image_digest": "",  # from the verified index
    "medai_inference_weights": {},  # from the verified index
    "medai_inference_models": [
        {"version": "v1", "bundleName": "mistral-7b-instruct-v0.3", "servedModelName": "mistral-7b-instruct-v0.3",
         "replicas": 1},
    ],
    "medai_inference_active_version": "v1",
    "medai_inference_gpu_count": 1,
    "medai_inference_resources": {"requests": {"cpu": "4", "memory": "32Gi"}, "limits": {"memory": "48Gi"}},
    "medai_inference_api_key_secret": "medai-inference-api-key",
    "medai_inference_load_balancer": {"enabled": False, "address": "", "pool": "", "tlsSecretName": "medai-inference-tls"},
    "medai_inference_extra_values": {},  # merged over the values below
    "medai_inference_model_root": "/var/lib/medai/bundle/models",
    "medai_inference_release_timeout": 1800,
}


def values(v: dict) -> dict:
    return {
        "bundleBuild": False,
        "image": {"repository": v["medai_inference_image_repository"], "tag": v["medai_inference_image_tag"],
                  "digest": v["medai_inference_image_digest"]},
        "models": v["medai_inference_models"],
        "activeVersion": v["medai_inference_active_version"],
        "weights": v["medai_inference_weights"],
        "modelRoot": v["medai_inference_model_root"],
        "gpu": {"count": int(v["medai_inference_gpu_count"])},
        "resources": v["medai_inference_resources"],
        "apiKey": {"secretName": v["medai_inference_api_key_secret"], "secretKey": "api-key"},
        "loadBalancer": v["medai_inference_load_balancer"],
    }


PODS = {"app.kubernetes.io/name": "medai-inference"}


def flows(v: dict, ns: dict) -> list[Flow]:
    """vLLM serves offline (no egress but DNS); clients reach it from the site through the LoadBalancer when
    medai_inference_load_balancer.enabled."""
    me = ns[NAME]
    out = dns(me, PODS)
    if (v["medai_inference_load_balancer"] or {}).get("enabled"):
        out.append(Flow(SITE, me, "http", "TCP", {}, PODS, "inference requests from the site (the LoadBalancer)"))
    return out
