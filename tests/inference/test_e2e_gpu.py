"""End to end on a real GPU site: vLLM serving the bundled model, reached through the inference Service.

Runs only when MEDAI_E2E_K3S is set AND a GPU site is supplied:
  MEDAI_E2E_KUBECONFIG          kubeconfig of a cluster installed by medai with at least one GPU agent
  MEDAI_E2E_INFERENCE_URL       the endpoint (the MetalLB address, or a `kubectl port-forward svc/medai-inference`)
  MEDAI_E2E_INFERENCE_KEY_FILE  the API key (0600 file, from Vault)
  MEDAI_E2E_SERVED_MODEL        the served model name (default mistral-7b-instruct-v0.3)
Otherwise skipped, saying so: no GPU, no K3s and no vLLM exist on the project's machines.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
NEEDED = ("MEDAI_E2E_KUBECONFIG", "MEDAI_E2E_INFERENCE_URL", "MEDAI_E2E_INFERENCE_KEY_FILE")
MISSING = [v for v in ("MEDAI_E2E_K3S", *NEEDED) if not os.environ.get(v)]
SERVED = os.environ.get("MEDAI_E2E_SERVED_MODEL", "mistral-7b-instruct-v0.3")

skip = pytest.mark.skipif(bool(MISSING), reason=(
    f"GPU/vLLM end-to-end not executed: {', '.join(MISSING)} not set (needs a real K3s site with a GPU agent); "
    "/v1/models and a chat completion were not tried"))


@pytest.fixture(scope="module")
def site():
    import httpx
    from kubernetes import client, config

    api = client.CoreV1Api(config.new_client_from_config(config_file=os.environ["MEDAI_E2E_KUBECONFIG"]))
    gpus = [n.metadata.name for n in api.list_node(label_selector="nvidia.com/gpu.present=true").items
            if int((n.status.allocatable or {}).get("nvidia.com/gpu", "0")) > 0]
    if not gpus:
        pytest.skip("the cluster has no node with allocatable nvidia.com/gpu: GPU end-to-end not executed")
    key = Path(os.environ["MEDAI_E2E_INFERENCE_KEY_FILE"]).read_text().strip()
    with httpx.Client(base_url=os.environ["MEDAI_E2E_INFERENCE_URL"].rstrip("/"), timeout=120,
                      verify=os.environ.get("MEDAI_E2E_CA", True)) as http:
        yield http, key


@skip
def test_endpoint_is_never_open(site):
    http, _ = site
    assert http.get("/v1/models").status_code == 401


@skip
def test_models_lists_the_served_name(site):
    http, key = site
    r = http.get("/v1/models", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    assert SERVED in [m["id"] for m in r.json()["data"]]


@skip
def test_a_chat_completion_answers(site):
    http, key = site
    r = http.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, json={
        "model": SERVED, "max_tokens": 16, "temperature": 0,
        "messages": [{"role": "user", "content": "Answer with one word: what colour is the sky on a clear day?"}]})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"].strip()
