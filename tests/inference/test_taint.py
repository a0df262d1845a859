"""One GPU taint everywhere: the k3s role's registration taint, the gpu role's kept taint, the chart's and the
device plugin's tolerations; and what medai install hands the gpu and inference roles from the index."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import jinja2
import pytest
import yaml

from installer.core.errors import BundleError
from installer.inference.plan import bundle_has_gpu_driver, install_extravars

ROOT = Path(__file__).resolve().parents[2]
TAINT = {"key": "gpu", "value": "true", "effect": "NoSchedule"}


def _taint(text: str) -> dict:
    kv, effect = text.split(":")
    key, value = kv.split("=")
    return {"key": key, "value": value, "effect": effect}


def _gpu_tolerations(tols: list[dict]) -> list[dict]:
    return [t for t in tols if t.get("effect") == "NoSchedule"]


def test_k3s_registration_taint_is_the_gpu_roles_taint():
    k3s = yaml.safe_load((ROOT / "roles/k3s/defaults/main.yml").read_text())
    rendered = jinja2.Environment().from_string(k3s["medai_k3s_node_taints"]).render(medai_k3s_gpu=True)
    assert yaml.safe_load(rendered) == ["gpu=true:NoSchedule"]
    gpu = yaml.safe_load((ROOT / "roles/gpu/defaults/main.yml").read_text())
    assert _taint(gpu["medai_gpu_node_taint"]) == TAINT == _taint(yaml.safe_load(rendered)[0])


def test_chart_and_device_plugin_tolerate_exactly_that_taint():
    chart = yaml.safe_load((ROOT / "charts/medai-inference/values.yaml").read_text())
    manifest = yaml.safe_load((ROOT / "bundles/platform.yaml").read_text())
    plugin = next(c for c in manifest["spec"]["charts"] if c["name"] == "nvidia-device-plugin")
    for tols in (chart["gpu"]["tolerations"], plugin["values"]["tolerations"]):
        assert _gpu_tolerations(tols) == [{**TAINT, "operator": "Equal"}], tols


def _index(ospkgs_groups=None, vllm=True):
    arts = []
    if ospkgs_groups is not None:
        arts.append({"kind": "ospkgs", "name": "debian-12", "meta": {"groups": ospkgs_groups}})
    if vllm:
        arts.append({"kind": "image", "ref": "docker.io/vllm/vllm-openai:v0.11.0", "digest": "sha256:" + "a" * 64})
    arts.append({"kind": "model", "name": "mistral-7b-instruct-v0.3", "path": "models/mistral-7b-instruct-v0.3",
                 "paths": ["models/mistral-7b-instruct-v0.3/config.json"]})
    return {"artifacts": arts, "files": [{"path": "models/mistral-7b-instruct-v0.3/config.json", "size": 2,
                                          "sha256": "b" * 64}]}


def test_lab_bundle_leaves_the_driver_out_and_needs_no_vllm():
    inv = SimpleNamespace(gpu=["gpu-1"], site=SimpleNamespace())
    assert install_extravars(_index(None, vllm=False), inv) == {"medai_gpu_bundle_driver": False}
    assert not bundle_has_gpu_driver(_index({"gpu": []}))


def test_gpu_bundle_passes_digest_and_driver():
    inv = SimpleNamespace(gpu=["gpu-1"], site=SimpleNamespace())
    try:
        out = install_extravars(_index({"gpu": ["nvidia-driver"]}), inv)
    except BundleError as e:  # the weight list needs the model's files as the build records them
        pytest.fail(str(e))
    assert out["medai_gpu_bundle_driver"] is True
    assert out["medai_inference_image_digest"] == "sha256:" + "a" * 64
    assert set(out["medai_inference_weights"]) == {"v1"}


def test_gpu_driver_without_vllm_image_is_refused():
    inv = SimpleNamespace(gpu=["gpu-1"], site=SimpleNamespace())
    with pytest.raises(BundleError, match="vllm-openai image"):
        install_extravars(_index({"gpu": ["nvidia-driver"]}, vllm=False), inv)
