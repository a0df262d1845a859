"""The platform apply's decisions, from recorded Helm and Kubernetes API responses (tests/platform/fixtures).

Not executed here: a real `helm upgrade --install` against K3s (no K3s can run on this machine). That path runs in
tests/deploy/test_e2e_k3s.py when MEDAI_E2E_K3S is set. These tests replay recorded responses through the same
apply loop and check its order, its idempotence decision and its failure line.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from installer.bundle.manifest import Chart
from installer.core.errors import InstallError
from installer.platform.apply import ApplyOptions, HelmError, apply_platform, decide, failure_line
from installer.platform.render import Release, SiteRender, apply_order
from installer.render.gate import ImagePlan
from tests.support.kube import RecordedKube

FIX = Path(__file__).parent / "fixtures"


def _load(name):
    return json.loads((FIX / name).read_text())


LISTS = _load("helm_list.json")
VALUES = {"kubeProxyReplacement": True, "k8sServiceHost": "10.20.0.10", "operator": {"replicas": 2}}


def test_not_installed_is_installed():
    assert decide("cilium", "cilium", "1.18.0", VALUES, None, None).action == "install"


def test_same_chart_and_values_is_unchanged():
    d = decide("cilium", "cilium", "1.18.0", VALUES, LISTS["unchanged"][0], json.loads(json.dumps(VALUES)))
    assert d.action == "unchanged" and "revision 1" in d.reason


def test_changed_values_are_upgraded():
    d = decide("cilium", "cilium", "1.18.0", {**VALUES, "operator": {"replicas": 1}}, LISTS["unchanged"][0], VALUES)
    assert d.action == "upgrade" and "values differ" in d.reason


def test_a_new_chart_version_is_upgraded():
    d = decide("metallb", "metallb", "0.15.3", {}, LISTS["old_chart"][0], {})
    assert d == d.__class__("upgrade", "release metallb runs metallb-0.15.2, the bundle has metallb-0.15.3")


def test_a_failed_release_is_upgraded():
    assert decide("longhorn", "longhorn", "1.9.1", {}, LISTS["failed"][0], {}).action == "upgrade"


def test_a_pending_release_is_refused():
    with pytest.raises(InstallError, match=r"release longhorn \(namespace longhorn-system\): status pending-upgrade"):
        decide("longhorn", "longhorn", "1.9.1", {}, LISTS["pending"][0], {})


def test_failure_line_names_release_pod_and_event_reason():
    line = failure_line("longhorn", "longhorn-system", "Error: UPGRADE FAILED: context deadline exceeded",
                        _load("pods_longhorn_imagepull.json")["items"], _load("events_longhorn_imagepull.json")["items"])
    assert line.startswith("release longhorn: pod longhorn-system/longhorn-manager-x7p2d ImagePullBackOff: Back-off "
                           "pulling image \"longhornio/longhorn-share-manager:v1.9.1\"")
    assert "(container pre-pull-share-manager-image)" in line
    # the latest Warning event of that pod, not the older Failed one
    assert "; event BackOff: Back-off pulling image" in line
    assert "(+1 more pod(s) not ready)" in line and line.endswith("; helm: UPGRADE FAILED: context deadline exceeded")
    assert "\n" not in line


def test_failure_line_prefers_the_release_pods_and_a_container_reason():
    line = failure_line("cilium", "kube-system", "Error: INSTALLATION FAILED: context deadline exceeded",
                        _load("pods_cilium_unschedulable.json")["items"], _load("events_cilium_unschedulable.json")["items"])
    assert line.startswith("release cilium: pod kube-system/cilium-7k2xq CrashLoopBackOff")
    assert "event BackOff: Back-off restarting failed container cilium-agent" in line
    assert "coredns" not in line  # not the release's pod


def test_failure_line_without_pods():
    assert failure_line("metallb", "metallb-system", "Error: chart requires kubeVersion", [], []) == \
        "release metallb (namespace metallb-system): chart requires kubeVersion; no failing pod found"


class Replay(RecordedKube):
    """Helm and Kubernetes (tests/support/kube.py) answering from recorded responses; records what the apply asked for."""

    def __init__(self, listed: dict, values: dict, fail: set[str] = frozenset(), pods=None, events=None):
        super().__init__({("v1", "Pod"): pods or [], ("v1", "Event"): events or []})
        self._listed, self._values, self._fail = listed, values, fail

    def listed(self, release, namespace):
        self.calls.append(("list", release))
        return self._listed.get(release)

    def values(self, release, namespace):
        return self._values.get(release, {})

    def upgrade_install(self, release, archive, values, namespace, timeout_s, wait=True):
        self.calls.append(("upgrade", release, timeout_s) + (() if wait else ("no-wait",)))
        if release in self._fail:
            raise HelmError("Error: UPGRADE FAILED: context deadline exceeded")

    def history(self, release, namespace):
        return []


def _site(names=("longhorn", "vault", "metallb", "cilium")):
    charts = [Chart(name=n, version={"cilium": "1.18.0", "metallb": "0.15.3"}.get(n, "1.9.1"), repo="https://x.example",
                    namespace={"cilium": "kube-system"}.get(n, f"{n}-system")) for n in names]
    releases = []
    for c in apply_order(charts):
        site = [{"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "medai-site"}}] \
            if c.name == "metallb" else []
        releases.append(Release(c.name, c, Path(f"/b/charts/{c.name}.tgz"), c.namespace,
                                VALUES if c.name == "cilium" else {}, [], site))
    return SiteRender(releases, ImagePlan(), "1.34.2", "1.34.0", {})


def test_order_idempotence_and_site_objects_after_their_release():
    r = Replay(listed={"cilium": LISTS["unchanged"][0], "metallb": LISTS["old_chart"][0]},
               values={"cilium": VALUES, "metallb": {}})
    out = apply_platform(_site(), r, r, ApplyOptions(timeouts={"longhorn": 900}, default_timeout=300))
    assert [o.release for o in out] == ["cilium", "metallb", "longhorn", "vault"]
    assert [o.action for o in out] == ["unchanged", "upgrade", "install", "install"]
    assert r.calls == [("list", "cilium"), ("list", "metallb"), ("upgrade", "metallb", 300),
                       ("apply", "IPAddressPool", None, "medai-site"),
                       ("list", "longhorn"), ("upgrade", "longhorn", 900), ("list", "vault"), ("upgrade", "vault", 300, "no-wait")]


def test_a_failing_release_stops_the_apply_with_its_failure_line():
    r = Replay(listed={}, values={}, fail={"longhorn"}, pods=_load("pods_longhorn_imagepull.json")["items"],
               events=_load("events_longhorn_imagepull.json")["items"])
    with pytest.raises(InstallError, match=r"^release longhorn: pod longhorn-system/longhorn-manager-x7p2d ImagePullBackOff"):
        apply_platform(_site(), r, r)
    assert ("list", "vault") not in r.calls  # nothing after the failed release


def test_vault_is_applied_without_wait_and_its_hook_runs_before_the_next_release():
    r = Replay(listed={}, values={})
    site = _site(("cilium", "vault", "harbor"))
    seen = []
    opts = ApplyOptions(default_timeout=60,
                        after={"vault": lambda rel: (seen.append(rel.name), r.calls.append(("hook", rel.name)))})
    apply_platform(site, r, r, opts)
    assert seen == ["vault"]
    ups = [c for c in r.calls if c[0] in ("upgrade", "hook")]
    assert ups == [("upgrade", "cilium", 60), ("upgrade", "vault", 60, "no-wait"), ("hook", "vault"),
                   ("upgrade", "harbor", 60)]


def test_vault_hook_failure_stops_the_apply():
    r = Replay(listed={}, values={})

    def boom(rel):
        raise InstallError("vault vault-0: still sealed")

    with pytest.raises(InstallError, match="still sealed"):
        apply_platform(_site(("cilium", "vault", "harbor")), r, r, ApplyOptions(after={"vault": boom}))
    assert ("upgrade", "harbor", 600) not in r.calls


def test_wait_running_names_the_pod_that_is_not_running():
    from installer.deploy.vault.install_step import wait_running

    class Pods:
        def __init__(self, answers):
            self.answers = answers

        def pods(self, ns):
            return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    pending = [{"metadata": {"name": "vault-0"}, "status": {"phase": "Running"}},
               {"metadata": {"name": "vault-1"}, "status": {"phase": "Pending"}}]
    running = [{"metadata": {"name": f"vault-{i}"}, "status": {"phase": "Running"}} for i in range(3)]
    wait_running(Pods([pending, running]), "vault", ["vault-0", "vault-1", "vault-2"], 60, sleep=lambda s: None)
    with pytest.raises(InstallError, match=r"release vault: pod vault/vault-1 is Pending after 0s"):
        wait_running(Pods([pending]), "vault", ["vault-0", "vault-1"], 0, sleep=lambda s: None)


def test_vault_secret_vars_only_with_k3s_and_checked_before_any_host(tmp_path, monkeypatch):
    from installer.core.errors import VaultError
    from installer.deploy.inventory import load_inventory
    from installer.deploy.vault.install_step import vault_secret_vars

    monkeypatch.setenv("MEDAI_HOME", str(tmp_path / "home"))
    inv = load_inventory(Path(__file__).resolve().parents[2] / "inventories" / "example" / "site.yml")
    assert vault_secret_vars(inv, _site(("vault",)), k3s_present=False) == {}
    assert vault_secret_vars(inv, _site(("cilium",)), k3s_present=True) == {}
    with pytest.raises(VaultError, match="all.vars.medai_vault_operators: required for Vault"):
        vault_secret_vars(inv, _site(("vault",)), k3s_present=True)
    assert not (tmp_path / "home" / "pki").exists()  # no CA made for an inventory that is refused
