"""The model-version switch (installer/inference/switch.py): decisions from API responses in recorded/.
The Kubernetes client itself is not executed against a cluster here."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from installer.core.errors import InstallError
from installer.inference.switch import VERSION_LABEL, rollout_ready, switch_service

REC = Path(__file__).parent / "recorded"


def rec(name: str) -> dict:
    return json.loads((REC / name).read_text())


@pytest.mark.parametrize("name, ready, why", [
    ("deployment-v2-weight-check-running.json", False, "0/1 ready"),
    ("deployment-v2-not-observed.json", False, "generation 2 not yet observed"),
    ("deployment-v2-old-replica-terminating.json", False, "1 old replicas still terminating"),
    ("deployment-v2-stalled.json", False, "ProgressDeadlineExceeded"),
    ("deployment-v2-ready.json", True, "1/1 ready"),
])
def test_rollout_ready(name, ready, why):
    r = rollout_ready(rec(name))
    assert r.ready is ready and why in r.reason


class RecordedApi:
    """Replays deployment responses in order (the last one repeats); records the Service patch."""

    def __init__(self, deployments: list[str]):
        self.deployments = [rec(n) for n in deployments]
        self.service = rec("service.json")
        self.patches: list[dict] = []
        self.reads = 0

    def read_deployment(self, name, namespace):
        assert (name, namespace) == ("medai-inference-v2", "inference")
        d = self.deployments[min(self.reads, len(self.deployments) - 1)]
        self.reads += 1
        return d

    def read_service(self, name, namespace):
        return self.service

    def patch_service_selector(self, name, namespace, selector):
        self.patches.append(selector)
        self.service["spec"]["selector"] = selector


def test_switches_only_after_the_new_pods_are_ready():
    api = RecordedApi(["deployment-v2-weight-check-running.json", "deployment-v2-old-replica-terminating.json",
                       "deployment-v2-ready.json"])
    seen_patches_while_waiting = []
    prev = switch_service(api, release="medai-inference", namespace="inference", version="v2",
                          sleep=lambda _s: seen_patches_while_waiting.append(len(api.patches)))
    assert prev == "v1" and api.reads == 3
    assert seen_patches_while_waiting == [0, 0], "no switch while the new version was not ready"
    (sel,) = api.patches
    assert sel[VERSION_LABEL] == "v2" and sel["app.kubernetes.io/name"] == "medai-inference"


def test_stalled_rollout_keeps_the_old_version():
    api = RecordedApi(["deployment-v2-stalled.json"])
    with pytest.raises(InstallError, match="still selects v1"):
        switch_service(api, release="medai-inference", namespace="inference", version="v2", sleep=lambda _s: None)
    assert api.patches == []


def test_timeout_keeps_the_old_version():
    api = RecordedApi(["deployment-v2-weight-check-running.json"])
    t = iter(range(0, 10_000, 100))
    with pytest.raises(InstallError, match="0/1 ready.*still selects v1"):
        switch_service(api, release="medai-inference", namespace="inference", version="v2", timeout_s=250,
                       sleep=lambda _s: None, clock=lambda: next(t))
    assert api.patches == []


def test_already_active_is_a_no_op():
    api = RecordedApi(["deployment-v2-ready.json"])
    api.service["spec"]["selector"][VERSION_LABEL] = "v2"
    assert switch_service(api, release="medai-inference", namespace="inference", version="v2") == "v2"
    assert api.patches == [] and api.reads == 0
