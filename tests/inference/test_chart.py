"""charts/medai-inference rendered with helm and validated (strict) against the K3s version's schemas."""
from __future__ import annotations

import filecmp
import json

import kubernetes_validate
import pytest

from .conftest import CHART, DIGEST, REPO, base_values, docs, helm_template, k3s_kube_version, weights_for


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    res = helm_template(CHART, release="medai-inference", namespace="inference", values=base_values(),
                        tmp=tmp_path_factory.mktemp("v"))
    assert res.returncode == 0, res.stderr
    return docs(res.stdout)


def _kind(ds, kind):
    return [d for d in ds if d["kind"] == kind]


def test_every_object_validates_strictly_at_the_k3s_version(rendered):
    assert {d["kind"] for d in rendered} == {"ConfigMap", "Deployment", "Service", "PersistentVolume",
                                             "PersistentVolumeClaim"}
    for d in rendered:
        kubernetes_validate.validate(d, k3s_kube_version(), strict=True)


def test_vllm_flags_image_and_offline_environment(rendered):
    (dep,) = _kind(rendered, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["image"] == f"docker.io/vllm/vllm-openai:v0.11.0@{DIGEST}"
    for flag in ("--dtype=bfloat16", "--max-model-len=8192", "--gpu-memory-utilization=0.90",
                 "--served-model-name=mistral-7b-instruct-v0.3", "--model=/models/mistral-7b-instruct-v0.3"):
        assert flag in c["args"], flag
    env = {e["name"]: e for e in c["env"]}
    assert env["HF_HUB_OFFLINE"]["value"] == "1" and env["TRANSFORMERS_OFFLINE"]["value"] == "1"
    # the API key only by reference, never a literal value, never on the command line
    ref = env["VLLM_API_KEY"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "medai-inference-api-key", "key": "api-key"} and "value" not in env["VLLM_API_KEY"]
    assert not any("api-key" in a for a in c["args"])


def test_gpu_scheduling_resources_and_probes(rendered):
    (dep,) = _kind(rendered, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    assert pod["runtimeClassName"] == "nvidia"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"} in pod["tolerations"]
    c = pod["containers"][0]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1 and c["resources"]["requests"]["nvidia.com/gpu"] == 1
    for probe in ("readinessProbe", "startupProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["path"] == "/health", probe
    ann = dep["spec"]["template"]["metadata"]["annotations"]
    assert ann["prometheus.io/path"] == "/metrics" and ann["prometheus.io/port"] == "8000"
    models = next(v for v in pod["volumes"] if v["name"] == "models")
    assert models["persistentVolumeClaim"] == {"claimName": "medai-inference-models", "readOnly": True}
    assert all(m["readOnly"] for m in c["volumeMounts"] if m["name"] == "models")


def test_weights_come_through_a_local_volume_on_the_gpu_nodes(rendered):
    (pv,) = _kind(rendered, "PersistentVolume")
    (pvc,) = _kind(rendered, "PersistentVolumeClaim")
    assert pv["spec"]["local"] == {"path": "/var/lib/medai/bundle/models"}
    assert pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"] == [
        {"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}]
    assert pv["spec"]["claimRef"] == {"namespace": "inference", "name": "medai-inference-models"}
    assert pvc["spec"]["volumeName"] == "medai-inference-models" and pvc["spec"]["storageClassName"] == ""
    assert pvc["spec"]["accessModes"] == pv["spec"]["accessModes"] == ["ReadOnlyMany"]


def test_every_container_runs_as_the_pods_non_root_user(rendered):
    (dep,) = _kind(rendered, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"] == {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
                                      "seccompProfile": {"type": "RuntimeDefault"}}
    for c in pod["initContainers"] + pod["containers"]:
        sc = c["securityContext"]
        assert "runAsUser" not in sc and sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
    (vllm,) = pod["containers"]
    assert {"name": "HOME", "value": "/home/vllm"} in vllm["env"]
    assert {"name": "home", "mountPath": "/home/vllm"} in vllm["volumeMounts"]


def test_weight_check_init_container_runs_the_projects_checker(rendered):
    (dep,) = _kind(rendered, "Deployment")
    (init,) = dep["spec"]["template"]["spec"]["initContainers"]
    assert init["command"] == ["python3", "/medai/checker/model_check.py"]
    assert "--termination-log=/dev/termination-log" in init["args"]
    assert "--path=/models/mistral-7b-instruct-v0.3" in init["args"]
    assert init["terminationMessagePath"] == "/dev/termination-log"
    sc = init["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["capabilities"] == {"drop": ["ALL"]}
    assert all(m["readOnly"] for m in init["volumeMounts"])
    checker = next(d for d in rendered if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-checker"))
    assert checker["data"]["model_check.py"] == (REPO / "installer/trust/model_check.py").read_text().rstrip("\n")
    weights = next(d for d in rendered if d["metadata"]["name"] == "medai-inference-weights-v1")
    assert json.loads(weights["data"]["index.json"])["artifacts"][0]["name"] == "mistral-7b-instruct-v0.3"


def test_chart_copy_of_the_checker_is_identical():
    assert filecmp.cmp(CHART / "files/model_check.py", REPO / "installer/trust/model_check.py", shallow=False)


def test_service_is_clusterip_on_the_active_version_only(rendered):
    (svc,) = _kind(rendered, "Service")
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["selector"]["medai.io/model-version"] == "v1"


def test_side_by_side_versions_and_loadbalancer_with_tls(tmp_path):
    w = {"v1": weights_for("m1", {"a": b"1"}), "v2": weights_for("m2", {"a": b"2"})}
    vals = base_values(models=[{"version": "v1", "bundleName": "m1", "servedModelName": "clinical"},
                               {"version": "v2", "bundleName": "m2", "servedModelName": "clinical"}],
                       activeVersion="v1", weights=w,
                       loadBalancer={"enabled": True, "address": "10.0.0.50", "tlsSecretName": "inference-tls"})
    res = helm_template(CHART, release="inf", namespace="inference", values=vals, tmp=tmp_path)
    assert res.returncode == 0, res.stderr
    ds = docs(res.stdout)
    for d in ds:
        kubernetes_validate.validate(d, k3s_kube_version(), strict=True)
    deps = {d["metadata"]["name"]: d for d in _kind(ds, "Deployment")}
    assert set(deps) == {"inf-v1", "inf-v2"}
    svcs = {d["metadata"]["name"]: d for d in _kind(ds, "Service")}
    assert svcs["inf"]["spec"]["selector"]["medai.io/model-version"] == "v1"
    lb = svcs["inf-lb"]
    assert lb["spec"]["type"] == "LoadBalancer" and lb["metadata"]["annotations"]["metallb.io/loadBalancerIPs"] == "10.0.0.50"
    c = deps["inf-v2"]["spec"]["template"]["spec"]["containers"][0]
    assert "--ssl-certfile=/medai/tls/tls.crt" in c["args"] and c["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"


@pytest.mark.parametrize("over, message", [
    ({"image": {"digest": ""}}, "image.digest is required"),
    ({"image": {"digest": "latest"}}, "is not sha256"),
    ({"weights": {}}, "weights.v1 is required"),
    ({"activeVersion": "v9"}, 'activeVersion: "v9" is not one of'),
])
def test_render_refuses_incomplete_values(tmp_path, over, message):
    res = helm_template(CHART, release="inf", namespace="inference", values=base_values(**over), tmp=tmp_path)
    assert res.returncode != 0 and message in res.stderr
