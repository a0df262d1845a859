"""Post-install checks from recorded PodLists (tests/platform/fixtures): Ready, and every running
container's imageID digest one the bundle carries. The live check runs only in the K3s end-to-end test."""
from __future__ import annotations

import json
from pathlib import Path

from installer.deploy.postcheck import bundle_digests, check_pods, load_pod_list
from tests.support.fixture_bundles import fixture_manifest, make_fixture_bundle

FIX = Path(__file__).resolve().parents[1] / "platform" / "fixtures"
RUNNING = load_pod_list(FIX / "pods_platform_running.json")
CARRIED = {c["imageID"].split("@")[1] for p in RUNNING for c in p["status"]["containerStatuses"]}


def test_all_ready_and_from_the_bundle():
    r = check_pods(RUNNING, CARRIED)
    assert r.ok and r.line("ab" * 32) == f"3 pods, all images from bundle {'ab' * 32}"


def test_an_image_the_bundle_does_not_carry_is_named():
    carried = CARRIED - {"sha256:9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f0e9d8c"}
    r = check_pods(RUNNING, carried)
    assert not r.ok and r.foreign == ["metallb-system/metallb-speaker-4xq7n speaker: quay.io/metallb/speaker:v0.15.3 "
                                      "(quay.io/metallb/speaker@sha256:9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f0e9d8c)"]
    assert "1 container(s) run an image the bundle does not carry" in r.line("x")


def test_pods_not_ready_are_named():
    pods = load_pod_list(FIX / "pods_longhorn_imagepull.json")
    r = check_pods(pods, set())
    assert r.not_ready[0].startswith("longhorn-system/longhorn-driver-deployer-7d9c8b6f5-qm4wz: phase Pending")
    assert any("ImagePullBackOff" in n for n in r.not_ready)


def test_bundle_digests_come_from_the_oci_layout(tmp_path):
    b = make_fixture_bundle(tmp_path / "b", fixture_manifest(charts=("metallb",)))
    index = json.loads((b / "oci" / "index.json").read_text())
    assert bundle_digests(b) == {m["digest"] for m in index["manifests"]} and len(index["manifests"]) == 2


def test_kube_system_counts_only_the_release_pods():
    from installer.deploy.postcheck import platform_pods
    pods = load_pod_list(FIX / "pods_cilium_unschedulable.json")
    picked = platform_pods({"kube-system": pods, "metallb-system": RUNNING[:2]},
                           {"kube-system": ["cilium"], "metallb-system": ["metallb"]})
    names = [p["metadata"]["name"] for p in picked]
    assert "coredns-6799fbcd5-8wq2n" not in names and "cilium-7k2xq" in names and len(names) == 4
