"""The project's own chart through the whole path: `bundle build` packages charts/medai-inference (a `path:`
chart source) into the bundle's charts/, the vLLM image comes from a loopback registry through spec.mirrors (a
small test image standing in, upstream layers cannot be downloaded here), a tiny file:// model stands in for the
weights; then `medai render` on inventories/example names the image by the digest the bundle carries and lists
every weight. vLLM itself is not executed (no GPU here)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import yaml

from installer.collect.build import BuildOptions, build_bundle
from installer.core.errors import LockDriftError, MedaiError
from installer.core.hashing import sha256_file
from installer.oci.mirrors import mirrored_name
from tests.support.fixture_bundles import fixture_manifest
from tests.support.fixture_charts import ROOT, needs_fixtures
from tests.support.images import build_seed_layout, skopeo_push

pytestmark = [needs_fixtures, pytest.mark.loopback]
INVENTORY = ROOT / "inventories" / "example" / "site.yml"
VLLM = "docker.io/vllm/vllm-openai:v0.11.0"
MODEL = "mistral-7b-instruct-v0.3"


@pytest.fixture(scope="module")
def built(registry, tmp_path_factory):
    work = tmp_path_factory.mktemp("local-chart")
    chart = work / "src" / "medai-inference"
    shutil.copytree(ROOT / "charts" / "medai-inference", chart)
    doc = yaml.safe_load((ROOT / "bundles" / "platform.yaml").read_text())
    entry = next(c for c in doc["spec"]["charts"] if c["name"] == "medai-inference")
    assert entry["path"] == "../charts/medai-inference" and "repo" not in entry  # platform.yaml lists it so
    doc = fixture_manifest(charts=("medai-inference",))
    doc["spec"]["charts"][0]["path"] = "src/medai-inference"  # relative to the manifest, as in platform.yaml
    doc["spec"]["images"] = [{"ref": VLLM}]
    model = work / "model"
    model.mkdir()
    (model / "config.json").write_text('{"architectures": ["MistralForCausalLM"]}\n')
    (model / "model-00001-of-00001.safetensors").write_bytes(b"stand-in weights\n" * 64)
    doc["spec"]["models"] = [{"name": MODEL, "source": f"file://{model}"}]
    k3s = work / "v1.34.2+k3s1" / "k3s"
    k3s.parent.mkdir()
    k3s.write_bytes(b"not a K3s binary: its URL names the K3s version for --kube-version in this render test\n")
    doc["spec"]["files"] = [{"name": "k3s", "url": f"file://{k3s}", "sha256": sha256_file(k3s), "hosts": ["servers"]}]
    mirrors = {"docker.io": f"{registry.host}/mirror/docker"}
    doc["spec"]["mirrors"] = mirrors
    seed = work / "seed"
    build_seed_layout(seed)
    skopeo_push(seed, "app", mirrored_name(VLLM, mirrors))
    manifest = work / "platform.yaml"
    manifest.write_text(yaml.safe_dump(doc, sort_keys=False))
    out = work / "bundle"
    build_bundle(BuildOptions(manifest=manifest, out=out, with_tools=False))
    return work, manifest, out, chart


def test_the_build_packages_the_local_chart_into_charts(built):
    work, manifest, out, chart = built
    archive = out / "charts" / "medai-inference-0.1.0.tgz"
    assert archive.is_file()
    index = json.loads((out / "index.json").read_text())
    files = {f["path"]: f["sha256"] for f in index["files"]}
    assert files["charts/medai-inference-0.1.0.tgz"] == sha256_file(archive)
    listing = subprocess.run(["tar", "tzf", str(archive)], capture_output=True, text=True, check=True).stdout.split()
    assert "medai-inference/templates/deployment.yaml" in listing and "medai-inference/files/model_check.py" in listing
    from installer.collect.charts import tree_sha256
    lock = yaml.safe_load((work / "platform.lock.yaml").read_text())
    assert tree_sha256(chart) in json.dumps(lock)  # the lock pins the chart's source tree


def test_render_names_vllm_by_the_carried_digest_and_lists_the_weights(built, tmp_path):
    work, manifest, out, chart = built
    r = subprocess.run([sys.executable, "-m", "installer.cli.main", "render", "--inventory", str(INVENTORY),
                        "--bundle", str(out), "--out", str(tmp_path / "r")], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    index = json.loads((out / "index.json").read_text())
    digest = next(a["digest"] for a in index["artifacts"] if a["kind"] == "image" and a["ref"].startswith(VLLM))
    objs = [d for d in yaml.safe_load_all((tmp_path / "r" / "01-medai-inference.yaml").read_text()) if d]
    deploy = next(o for o in objs if o["kind"] == "Deployment")
    images = {c["image"] for c in deploy["spec"]["template"]["spec"]["containers"] +
              deploy["spec"]["template"]["spec"]["initContainers"]}
    assert images == {f"{VLLM}@{digest}"}
    cm = next(o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-weights-v1"))
    listed = {f["path"] for f in json.loads(cm["data"]["index.json"])["files"]}
    assert listed == {f"models/{MODEL}/config.json", f"models/{MODEL}/model-00001-of-00001.safetensors"}
    tol = deploy["spec"]["template"]["spec"]["tolerations"]
    assert tol == [{"key": "gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}]


def test_locked_rebuild_passes_and_a_changed_chart_is_drift(built):
    work, manifest, out, chart = built
    build_bundle(BuildOptions(manifest=manifest, out=out, with_tools=False, locked=True))
    with open(chart / "values.yaml", "a") as f:
        f.write("# changed after the lock\n")
    with pytest.raises(LockDriftError, match="medai-inference 0.1.0 .*source tree sha256"):
        build_bundle(BuildOptions(manifest=manifest, out=out, with_tools=False, locked=True))


def test_a_chart_directory_naming_another_version_is_refused(built, tmp_path):
    work, manifest, out, chart = built
    doc = yaml.safe_load(manifest.read_text())
    doc["spec"]["charts"][0]["version"] = "0.2.0"
    bad = work / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(MedaiError, match="Chart.yaml: declares medai-inference 0.1.0, the manifest medai-inference 0.2.0"):
        build_bundle(BuildOptions(manifest=bad, out=tmp_path / "b", with_tools=False))
