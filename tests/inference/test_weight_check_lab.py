"""The weight check where the weights are loaded, for real in a podman lab node.

A bundle with a small model (two safetensors shards plus tokenizer/config files) is built and signed by the
real build; `medai install --tags stage` stages it on a GPU lab node with the real stage role; the chart's
weight list is cut from the signature-checked index (installer/inference/weights.py), and the init container's
exact command (`python3 model_check.py … --termination-log …`, the chart's copy of the checker) runs in the
node as the pod's non-root user (uid 10001) with every capability dropped (setpriv), as the init container does.
Not executed: the kubelet, containerd, the local PersistentVolume's mount and the pod itself (no K3s here); the
termination-log file is what the kubelet would show in the pod's status.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from installer.inference.weights import weights_values
from tests.support.lab import LAB_VARS, node_exec

pytestmark = pytest.mark.lab

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = "tiny-model"
STAGED = f"/var/lib/medai/bundle/models/{MODEL}"
# The pod sees the model directory as its volume's root (the kubelet bind-mounts it; the 0700 stage directory
# above it is not in the pod): here the checker starts inside it, as root, before setpriv drops to the pod's user.
CHECK = (f"cd {STAGED} && setpriv --reuid=10001 --regid=10001 --clear-groups --inh-caps=-all --bounding-set=-all "
         "--no-new-privs python3 /opt/medai-check/model_check.py --index=/opt/medai-check/index.json "
         f"--model={MODEL} --path=. --workers=2 --termination-log=/opt/medai-check/termination-log "
         "--json-out=/opt/medai-check/result.json")


@pytest.fixture(scope="module")
def staged(lab_nodes, tmp_path_factory):
    from installer.collect.build import BuildOptions, build_bundle
    from installer.trust.keys import generate_keypair
    from installer.trust.verify import verify_bundle

    work = tmp_path_factory.mktemp("weights-lab")
    src = work / "model-src"
    src.mkdir()
    for name, size in (("model-00001-of-00002.safetensors", 3 << 20), ("model-00002-of-00002.safetensors", 2 << 20)):
        (src / name).write_bytes(os.urandom(size))
    (src / "config.json").write_text('{"architectures": ["MistralForCausalLM"]}\n')
    (src / "tokenizer.json").write_text('{"version": "1.0"}\n')
    manifest = work / "bundle.yaml"
    manifest.write_text(json.dumps({"apiVersion": "medai/v1", "kind": "Bundle", "metadata": {"name": "weights-lab"},
                                    "spec": {"models": [{"name": MODEL, "source": f"file://{src}"}]}}))
    key, pub = generate_keypair(work / "site", b"lab-password")
    os.environ["MEDAI_KEY_PASSWORD"] = "lab-password"
    try:
        build_bundle(BuildOptions(manifest=manifest, out=work / "bundle", sign_key=key, with_tools=False))
    finally:
        os.environ.pop("MEDAI_KEY_PASSWORD", None)  # the build already took it out once read
    res = verify_bundle(work / "bundle", key=pub, write_report=False)
    assert res.ok, res.problems
    index = json.loads((work / "bundle/index.json").read_bytes())
    weights = weights_values(index, {"v1": MODEL})["v1"]  # what the chart's ConfigMap carries

    lab = lab_nodes(servers=1, gpu_agents=1)
    inv = lab.inventory(work / "site.yml", cluster_name="lab-weights", bundle_dir=work / "bundle", extra_vars=LAB_VARS)
    env = {**os.environ, "MEDAI_HOME": str(work / "home"), "COLUMNS": "300"}
    r = subprocess.run([sys.executable, "-m", "installer.cli.main", "install", "--inventory", str(inv), "--key", str(pub),
                        "--tags", "stage", "--yes"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    gpu = lab.gpu[0]
    node_exec(gpu, "mkdir -p /opt/medai-check && chown 10001:10001 /opt/medai-check")
    (work / "index.json").write_text(weights)
    for f, dest in ((f"{ROOT}/charts/medai-inference/files/model_check.py", "model_check.py"),
                    (str(work / "index.json"), "index.json")):
        subprocess.run(["podman", "cp", f, f"{gpu.name}:/opt/medai-check/{dest}"], check=True,
                       env=__import__("installer.lab.podman", fromlist=["podman_env"]).podman_env())
    node_exec(gpu, "chmod 0444 /opt/medai-check/model_check.py /opt/medai-check/index.json")  # as the ConfigMaps mount
    yield lab, gpu
    lab.destroy()


def _check(gpu) -> tuple[int, str, dict]:
    node_exec(gpu, "rm -f /opt/medai-check/termination-log /opt/medai-check/result.json")
    p = node_exec(gpu, CHECK, check=False, timeout=300)
    log = node_exec(gpu, "cat /opt/medai-check/termination-log").stdout
    return p.returncode, log, json.loads(node_exec(gpu, "cat /opt/medai-check/result.json").stdout)


def test_staged_model_is_root_owned_read_only_and_on_the_gpu_node_only(staged):
    lab, gpu = staged
    out = node_exec(gpu, f"stat -c '%U %a %n' {STAGED}/*").stdout.split("\n")
    assert all(line.startswith("root 444 ") for line in out if line), out
    # the pods' non-root user reads them: the model directories are open, the stage directory above stays private
    dirs = node_exec(gpu, f"stat -c '%U %a %n' /var/lib/medai/bundle /var/lib/medai/bundle/models {STAGED}").stdout
    assert dirs.split("\n")[:3] == ["root 700 /var/lib/medai/bundle", "root 755 /var/lib/medai/bundle/models",
                                     f"root 755 {STAGED}"], dirs
    assert node_exec(lab.servers[0], f"test -e {STAGED}", check=False).returncode == 1


def test_intact_model_passes(staged):
    _, gpu = staged
    rc, log, result = _check(gpu)
    assert rc == 0, log
    assert log.startswith(f"model {MODEL} at .: PASSED (4 files,")
    assert result["result"] == "passed" and result["files"] == 4 and result["problems"] == []


@pytest.mark.parametrize("damage, restore, named", [
    (f"cp -p {STAGED}/model-00002-of-00002.safetensors /root/s2 && chmod u+w {STAGED}/model-00002-of-00002.safetensors"
     f" && printf '\\377' | dd of={STAGED}/model-00002-of-00002.safetensors bs=1 seek=1048576 count=1 conv=notrunc"
     f" 2>/dev/null && chmod 0444 {STAGED}/model-00002-of-00002.safetensors",
     f"cp -p /root/s2 {STAGED}/model-00002-of-00002.safetensors",
     "altered: model-00002-of-00002.safetensors: sha256 differs from the signed index"),
    (f"mv {STAGED}/model-00001-of-00002.safetensors /root/s1",
     f"mv /root/s1 {STAGED}/model-00001-of-00002.safetensors",
     "missing: model-00001-of-00002.safetensors"),
    (f"echo 'import os' > {STAGED}/modeling_evil.py",
     f"rm {STAGED}/modeling_evil.py",
     "extra: modeling_evil.py: not part of model tiny-model in the index"),
], ids=["flipped-byte", "missing-shard", "extra-file"])
def test_damage_stops_it_naming_the_file(staged, damage, restore, named):
    _, gpu = staged
    node_exec(gpu, damage)
    try:
        rc, log, result = _check(gpu)
    finally:
        node_exec(gpu, restore)
    assert rc == 1
    first, *problems = log.strip().split("\n")
    assert "REFUSED" in first
    assert problems == [f"problem: model {MODEL}: {named}"]
    assert result["result"] == "refused" and result["problems"] == [named]
    assert _check(gpu)[0] == 0, "restored model passes again"
