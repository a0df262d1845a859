"""The bundled NVIDIA device-plugin chart (upstream 0.17.4 archive) rendered with bundles/platform.yaml's values:
it runs only on the gpu role's labelled nodes, tolerates their taint, uses the nvidia runtime class, and every
image it starts (node-feature-discovery's too, with gfd on) appears in the render for the completeness gate.
Rendered and validated only: no GPU, no device plugin executed here."""
from __future__ import annotations

import kubernetes_validate
import pytest
import yaml

from .conftest import DEVICE_PLUGIN, REPO, docs, helm_template, k3s_kube_version


def _platform_values() -> dict:
    doc = yaml.safe_load((REPO / "bundles/platform.yaml").read_text())
    chart = next(c for c in doc["spec"]["charts"] if c["name"] == "nvidia-device-plugin")
    assert chart["version"] == "0.17.4"
    return chart["values"]


def _images(ds: list[dict]) -> set[str]:
    out = set()
    for d in ds:
        if d["kind"] not in ("DaemonSet", "Deployment", "StatefulSet", "Job"):
            continue
        spec = d["spec"]["template"]["spec"]
        for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
            out.add(c["image"])
    return out


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    if not DEVICE_PLUGIN.exists():
        pytest.skip(f"{DEVICE_PLUGIN} not found (shared fixtures)")
    res = helm_template(DEVICE_PLUGIN, release="nvidia-device-plugin", namespace="nvidia-device-plugin",
                        values=_platform_values(), tmp=tmp_path_factory.mktemp("v"))
    assert res.returncode == 0, res.stderr
    return docs(res.stdout)


def test_validates_at_the_k3s_version(rendered):
    unknown = set()
    for d in rendered:
        try:
            kubernetes_validate.validate(d, k3s_kube_version(), strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            unknown.add(d["kind"])
    # only custom resources of node-feature-discovery have no built-in schema
    assert unknown <= {"CustomResourceDefinition", "NodeFeatureRule", "NodeFeature", "NodeFeatureGroup"}, unknown


def test_device_plugin_runs_only_on_labelled_gpu_nodes_with_the_nvidia_runtime(rendered):
    ds = [d for d in rendered if d["kind"] == "DaemonSet"
          and d["metadata"]["labels"].get("app.kubernetes.io/name") == "nvidia-device-plugin"]
    assert {d["metadata"]["name"] for d in ds} >= {"nvidia-device-plugin", "nvidia-device-plugin-gpu-feature-discovery"}
    for d in ds:
        pod = d["spec"]["template"]["spec"]
        assert pod["runtimeClassName"] == "nvidia"
        assert pod["nodeSelector"]["nvidia.com/gpu.present"] == "true"
        assert "affinity" not in pod, "the NFD-label affinity would keep it off nodes the gpu role labels"
        assert {"key": "gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"} in pod["tolerations"]


def test_every_image_started_is_visible_to_the_gate(rendered):
    images = _images(rendered)
    assert any(i.startswith("nvcr.io/nvidia/k8s-device-plugin:v0.17.4") for i in images), images
    assert any("node-feature-discovery" in i for i in images), images  # gfd on renders NFD
