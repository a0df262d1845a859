"""The GPU-agent site rendered with the project's own vLLM chart (charts/medai-inference) besides every upstream
fixture chart: vLLM runs as non-root and reads the staged weights through a local PersistentVolume (no hostPath),
so medai-inference enforces `restricted`, is no documented exception of the CIS check, and the whole render passes
the coherence gate."""
from __future__ import annotations

import hashlib
import json
import tarfile

import pytest
import yaml

from installer.compliance.k3s_checks import PSA_EXCEPTIONS
from installer.deploy.coherence_step import findings
from installer.render.podsecurity import ENFORCE_LABEL, evaluate, pod_template
from tests.support.fixture_bundles import fixture_manifest, make_fixture_bundle
from tests.support.fixture_charts import FIXTURES, ROOT, needs_fixtures, platform
from tests.support.render_platform import EXTRA_IMAGES, render

pytestmark = needs_fixtures
CHART = ROOT / "charts" / "medai-inference"
VLLM = "docker.io/vllm/vllm-openai:v0.11.0"
MODEL = "mistral-7b-instruct-v0.3"
MODEL_ROOT = "/var/lib/medai/bundle/models"
SITE = {"medai_cluster_name": "gpu-site", "medai_metallb_pool": "10.30.0.200-10.30.0.220",
        "medai_vault_domain": "site.example", "medai_harbor_hostname": "harbor.site.example",
        "medai_keycloak_hostname": "keycloak.site.example", "medai_keycloak_clients": {
            "harbor": {"redirect_uris": ["https://harbor.site.example/c/oidc/callback"]},
            "medical-ai-api": {"redirect_uris": ["https://api.site.example/oauth2/callback"]},
            "medical-ai-web": {"redirect_uris": ["https://ai.site.example/auth/callback"]}}}


def _package(out):
    """charts/medai-inference as the build carries it: a chart archive NAME-VERSION.tgz."""
    version = yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]
    dest = out / f"medai-inference-{version}.tgz"
    with tarfile.open(dest, "w:gz") as tar:
        tar.add(CHART, arcname="medai-inference", filter=lambda t: None if "__pycache__" in t.name else t)
    return dest


def _with_model(root) -> None:
    """index.json with the model the chart's weight lists are cut from (one small file)."""
    path = root / "index.json"
    index = json.loads(path.read_text())
    data = b"{}"
    f = {"path": f"models/{MODEL}/config.json", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    index["artifacts"].append({"kind": "model", "name": MODEL, "path": f"models/{MODEL}", "size": len(data),
                               "sha256": f["sha256"], "paths": [f["path"]]})
    index["files"].append(f)
    path.write_text(json.dumps(index))


@pytest.fixture(scope="module")
def gpu_site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("inference")
    archives = {p.name: p for p in FIXTURES.glob("*.tgz")}
    chart = _package(tmp)
    archives[chart.name] = chart
    charts = tuple(c.name for c in platform().spec.charts if f"{c.name}-{c.version}.tgz" in archives)
    assert "medai-inference" in charts
    root = make_fixture_bundle(tmp / "bundle", fixture_manifest(charts), images=EXTRA_IMAGES + (VLLM,),
                               archives=archives)
    _with_model(root)
    doc = {"all": {"vars": SITE, "children": {
        "servers": {"hosts": {"srv-1": {"ansible_host": "10.30.0.11"}}},
        "agents": {"hosts": {"cpu-1": {"ansible_host": "10.30.0.21"}, "gpu-1": {"ansible_host": "10.30.0.22"}}},
        "gpu": {"hosts": {"gpu-1": {}}}}}}
    inv = tmp / "gpu-site.yml"
    inv.write_text(yaml.safe_dump(doc))
    return render(inv, root)


def _release(r, name):
    return next(rel for rel in r.site.releases if rel.name == name)


def test_the_gpu_site_with_vllm_is_coherent(gpu_site):
    found = [str(f) for f in findings(gpu_site.inv, gpu_site.site, gpu_site.index)]
    assert found == [], "\n".join(found)


def test_medai_inference_enforces_restricted_and_is_no_exception(gpu_site):
    rel = _release(gpu_site, "medai-inference")
    ns = next(o for o in rel.site_objects if o["kind"] == "Namespace")
    assert ns["metadata"]["labels"][ENFORCE_LABEL] == "restricted"
    assert "medai-inference" not in PSA_EXCEPTIONS
    deployments = [o for o in rel.objects if o["kind"] == "Deployment"]
    assert deployments and all(evaluate(o, "restricted") == [] for o in deployments)


def test_vllm_runs_as_non_root_on_the_weights_local_volume(gpu_site):
    rel = _release(gpu_site, "medai-inference")
    by_kind = {}
    for o in rel.objects:
        by_kind.setdefault(o["kind"], []).append(o)
    (pv,) = by_kind["PersistentVolume"]
    (pvc,) = by_kind["PersistentVolumeClaim"]
    assert pv["spec"]["local"] == {"path": MODEL_ROOT}
    assert pv["spec"]["accessModes"] == ["ReadOnlyMany"] and pv["spec"]["storageClassName"] == ""
    term = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert term == [{"matchExpressions": [{"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}]}]
    assert pv["spec"]["claimRef"] == {"namespace": "medai-inference", "name": pvc["metadata"]["name"]}
    assert pvc["spec"]["volumeName"] == pv["metadata"]["name"] and pvc["spec"]["storageClassName"] == ""
    tpl = pod_template(by_kind["Deployment"][0])
    spec = tpl.spec
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
    models = next(v for v in spec["volumes"] if v["name"] == "models")
    assert models == {"name": "models", "persistentVolumeClaim": {"claimName": pvc["metadata"]["name"],
                                                                  "readOnly": True}}
    assert not any("hostPath" in v for v in spec["volumes"])
    for c in spec["containers"] + spec["initContainers"]:
        assert "runAsUser" not in (c.get("securityContext") or {}), c["name"]  # the pod's non-root user
