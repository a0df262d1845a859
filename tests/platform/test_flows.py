"""Install, upgrade, rollback and reset of the platform releases through the one applier, at the one API seam.

A recording adapter (Cluster below, on tests/support/kube.py) stands where HelmCli and KubeApi stand
(installer.deploy.platform_step.adapters): it answers `helm list`, `helm history` and `helm get values` as Helm
does (revisions, statuses, chart names, the user-supplied values of the current revision) and records every call.
The flows are the real ones on signed fixture bundles of the real upstream charts
(tests/support/fixture_bundles.py): the install's platform step (platform_step.apply, what `medai install` runs
once K3s is up), `medai upgrade`'s make_plan and execute, `medai rollback --releases-only` (run_rollback) and the
platform half of `medai reset` (uninstall_releases).

Not executed here: Helm against a live K3s, the Vault/Keycloak/Harbor hooks' API calls (recorded as hook calls;
their own tests replay recorded API responses), and the playbooks of install and reset (the lab tests run those).
The same flows against a real cluster: tests/deploy/test_e2e_k3s.py with MEDAI_E2E_K3S.
"""
from __future__ import annotations

import copy
import io
import tarfile

import pytest
import yaml
from rich.console import Console

from installer.core.errors import InstallError
from installer.deploy import idp_step, platform_step
from installer.deploy.install import render_platform, uninstall_releases
from installer.deploy.inventory import load_inventory
from installer.deploy.state import new_run
from installer.deploy.working_copy import verified_working_copy
from installer.platform.order import NEEDS, NO_WAIT, ORDER
from installer.trust.keys import generate_keypair, load_private_key
from installer.trust.signing import sign_index
from installer.upgrade.rollback import run_rollback
from installer.upgrade.run import UpgradeOptions, execute, make_plan
from tests.support.fixture_bundles import bumped_chart, fixture_manifest, make_fixture_bundle
from tests.support.fixture_charts import PLATFORM, ROOT, needs_fixtures
from tests.support.kube import RecordedKube

INVENTORY = ROOT / "inventories" / "example" / "site.yml"
# every upstream chart of bundles/platform.yaml (medai-inference is the project's own: tests/inference renders it)
CHARTS = ("cilium", "metallb", "longhorn", "cloudnative-pg", "vault", "keycloakx", "harbor", "nvidia-device-plugin")
BUMPED = {"metallb": ("0.15.3", "0.15.4"), "longhorn": ("1.9.1", "1.9.2")}
EXTRA_IMAGES = ("docker.io/adorsys/keycloak-config-cli:6.5.1-26.0.5", "ghcr.io/cloudnative-pg/postgresql:17.5",
                "ghcr.io/aquasecurity/trivy-db:2", "ghcr.io/aquasecurity/trivy-java-db:1")


class Cluster(RecordedKube):
    """Helm and the Kubernetes API (tests/support/kube.py) as a cluster answers them; every call recorded as
    (verb, release, namespace, …)."""

    def __init__(self):
        super().__init__()
        self.releases: dict[tuple[str, str], list[dict]] = {}  # (release, namespace) -> history, oldest first

    # --- helm
    def listed(self, release, namespace):
        self.calls.append(("list", release, namespace))
        h = self.releases.get((release, namespace))
        if not h:
            return None
        cur = h[-1]
        return {"name": release, "namespace": namespace, "revision": str(cur["revision"]), "status": cur["status"],
                "chart": cur["chart"], "app_version": ""}

    def values(self, release, namespace):
        self.calls.append(("values", release, namespace))
        return copy.deepcopy(self.releases[(release, namespace)][-1]["values"])

    def history(self, release, namespace):
        self.calls.append(("history", release, namespace))
        return [{k: v for k, v in h.items() if k != "values"} for h in self.releases.get((release, namespace), [])]

    def _revision(self, release, namespace, chart, values, description):
        h = self.releases.setdefault((release, namespace), [])
        for old in h:
            old["status"] = "superseded"
        h.append({"revision": len(h) + 1, "status": "deployed", "chart": chart, "values": copy.deepcopy(values),
                  "description": description})

    def upgrade_install(self, release, archive, values, namespace, timeout_s, wait=True):
        with tarfile.open(archive) as t:
            meta = yaml.safe_load(t.extractfile(next(m for m in t.getmembers() if m.name.endswith("/Chart.yaml"))))
        self.calls.append(("upgrade_install", release, namespace, f"{meta['name']}-{meta['version']}",
                           copy.deepcopy(values), wait))
        first = (release, namespace) not in self.releases
        self._revision(release, namespace, f"{meta['name']}-{meta['version']}", values,
                       "Install complete" if first else "Upgrade complete")

    def rollback(self, release, namespace, revision, timeout_s, wait=True):
        self.calls.append(("rollback", release, namespace, revision, wait))
        target = self.releases[(release, namespace)][revision - 1]
        self._revision(release, namespace, target["chart"], target["values"], f"Rollback to {revision}")

    def uninstall(self, release, namespace, timeout_s):
        self.calls.append(("uninstall", release, namespace))
        del self.releases[(release, namespace)]


def _hook(cluster):
    def make(*args, **kwargs):
        return lambda release: cluster.calls.append(("hook", release.name, release.namespace))
    return make


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("flows")
    key_path, pub = generate_keypair(tmp / "site", b"flows")
    key = load_private_key(key_path, b"flows")
    v1_doc = fixture_manifest(CHARTS)
    v2_doc = copy.deepcopy(v1_doc)
    archives = {}
    for c in v2_doc["spec"]["charts"]:
        if c["name"] in BUMPED:
            old, new = BUMPED[c["name"]]
            c["version"] = new
            archives[f"{c['name']}-{new}.tgz"] = bumped_chart(c["name"], old, new, tmp / "bumped")
    out = {}
    for name, doc, ver, month in (("v1", v1_doc, "1.0.0", "01"), ("v2", v2_doc, "1.1.0", "02")):
        b = make_fixture_bundle(tmp / name, doc, images=EXTRA_IMAGES, archives=archives, version=ver, sign_key=key,
                                created=f"2026-{month}-01T00:00:00Z")
        sign_index(b, (b / "index.json").read_bytes(), key)
        out[name] = b
    out["pub"] = pub
    out["tmp"] = tmp
    return out


@pytest.fixture
def cluster(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDAI_HOME", str(tmp_path / "home"))
    c = Cluster()
    monkeypatch.setattr(platform_step, "adapters", lambda kubeconfig, bundle: (c, c))
    for name in ("keycloak_after_release", "harbor_after_release", "vault_after_release"):
        monkeypatch.setattr(idp_step, name, _hook(c))
    return c


def _console():
    return Console(file=io.StringIO(), width=300)


def _install(inv, bundle, pub):
    """What `medai install` does with the platform once K3s is up: the verified copy, its render, the apply."""
    vb = verified_working_copy(bundle, pub)
    site = render_platform(_console(), inv, vb.root)
    record = new_run("install", inv.path, vb.root / "index.json")
    platform_step.apply(inv, site, record, vb.root, _console())
    record.finish("successful")
    return site


def _render(inv, bundle):
    return render_platform(_console(), inv, bundle, check_images=False)


def _applies(calls):
    return [c for c in calls if c[0] == "upgrade_install"]


@needs_fixtures
def test_install_upgrade_rollback_reset_go_through_one_applier(bundles, cluster):
    inv = load_inventory(INVENTORY)
    manifest = {c["name"]: c for c in fixture_manifest(CHARTS)["spec"]["charts"]}
    enabled = [n for n in ORDER if n in manifest]  # Harbor's Redis chart comes with harbor (fixture_manifest)

    # ---- install v1: every release in the one order, the render's values, Vault not waited on, its hook next
    v1 = _install(inv, bundles["v1"], bundles["pub"])
    by_name = {r.name: r for r in v1.releases}
    installed = _applies(cluster.calls)
    assert [c[1] for c in installed] == enabled
    for c in installed:
        assert c[4] == by_name[c[1]].values, f"install applied other values than medai render for {c[1]}"
        assert c[5] is (c[1] not in NO_WAIT)
    i = cluster.calls.index(next(c for c in installed if c[1] == "vault"))
    after_vault = [c for c in cluster.calls[i + 1:] if c[0] in ("hook", "upgrade_install")][0]
    assert after_vault == ("hook", "vault", "vault")  # unseal before anything else is applied

    # ---- upgrade to v2 (two chart versions bumped): only those two, the install's values, in the one order
    mark = len(cluster.calls)
    opts = UpgradeOptions(INVENTORY, bundles["v2"], bundles["pub"])
    plan = make_plan(opts, _console())
    assert plan.steps() == ["releases"]
    execute(opts, plan, _console())
    v2 = {r.name: r for r in _render(inv, plan.bundle).releases}
    upgraded = _applies(cluster.calls[mark:])
    assert [(c[1], c[3]) for c in upgraded] == [("metallb", "metallb-0.15.4"), ("longhorn", "longhorn-1.9.2")]
    for c in upgraded:
        assert c[4] == v2[c[1]].values, f"upgrade applied other values than medai render for {c[1]}"
        assert c[4] == by_name[c[1]].values  # the site's values carried over, not reset to the manifest's

    # ---- rollback --releases-only to v1: each bumped release back to its v1 revision, reverse order
    mark = len(cluster.calls)
    run_rollback(INVENTORY, bundles["v1"], bundles["pub"], None, True, _console())
    rolled = [c for c in cluster.calls[mark:] if c[0] in ("rollback", "upgrade_install")]
    assert rolled == [("rollback", "longhorn", "longhorn-system", 1, True),
                      ("rollback", "metallb", "metallb-system", 1, True)]
    assert all(h[-1]["chart"] == f"{n}-{manifest[n]['version']}" for (n, _), h in cluster.releases.items())

    # ---- reset: every release uninstalled in reverse order
    mark = len(cluster.calls)
    from installer.deploy.state import kubeconfig_path

    kc = kubeconfig_path(inv.cluster)
    kc.parent.mkdir(parents=True, exist_ok=True)
    kc.write_text("apiVersion: v1\n")  # the fetched kubeconfig the reset needs to reach the API
    record = new_run("reset", inv.path)
    uninstall_releases(inv, record, _console())
    assert [c[1] for c in cluster.calls[mark:] if c[0] == "uninstall"] == list(reversed(enabled))
    assert cluster.releases == {}

    # ---- every call for a release named the manifest's namespace
    for c in cluster.calls:
        if c[0] in ("list", "values", "history", "upgrade_install", "rollback", "uninstall", "hook"):
            assert c[2] == manifest[c[1]]["namespace"], c


@needs_fixtures
def test_a_changed_site_value_changes_what_the_upgrade_applies(bundles, cluster, tmp_path):
    doc = yaml.safe_load(INVENTORY.read_text())
    site = tmp_path / "site.yml"
    site.write_text(yaml.safe_dump(doc))
    inv = load_inventory(site)
    _install(inv, bundles["v1"], bundles["pub"])
    doc["all"]["vars"]["medai_longhorn_replicas"] = 2
    site.write_text(yaml.safe_dump(doc))
    mark = len(cluster.calls)
    opts = UpgradeOptions(site, bundles["v2"], bundles["pub"])
    execute(opts, make_plan(opts, _console()), _console())
    longhorn = next(c for c in _applies(cluster.calls[mark:]) if c[1] == "longhorn")
    assert longhorn[4]["defaultSettings"]["defaultReplicaCount"] == 2
    assert longhorn[4]["persistence"]["defaultClassReplicaCount"] == 2


@needs_fixtures
def test_an_upgrade_that_moves_a_release_to_another_namespace_is_refused_before_any_host(bundles, cluster):
    inv = load_inventory(INVENTORY)
    _install(inv, bundles["v1"], bundles["pub"])
    doc = yaml.safe_load((bundles["v2"] / "manifest.yaml").read_text())
    next(c for c in doc["spec"]["charts"] if c["name"] == "metallb")["namespace"] = "lb-system"
    key_path, pub = generate_keypair(bundles["tmp"] / "moved-key", b"m")
    key = load_private_key(key_path, b"m")
    moved = make_fixture_bundle(bundles["tmp"] / "moved", doc, images=EXTRA_IMAGES, version="1.2.0", sign_key=key,
                                created="2026-03-01T00:00:00Z",
                                archives={p.name: p for p in (bundles["v2"] / "charts").iterdir()})
    sign_index(moved, (moved / "index.json").read_bytes(), key)
    mark = len(cluster.calls)
    with pytest.raises(InstallError, match=r"chart metallb: release metallb moves from namespace metallb-system to "
                                           r"lb-system"):
        make_plan(UpgradeOptions(INVENTORY, moved, pub), _console())
    assert _applies(cluster.calls[mark:]) == []


def _unplaced(order) -> list[str]:
    charts = [c.get("releaseName") or c["name"] for c in yaml.safe_load(PLATFORM.read_text())["spec"]["charts"]]
    return [c for c in charts if c not in order]


def test_every_chart_of_the_platform_manifest_has_a_place_in_the_one_order():
    assert _unplaced(ORDER) == [], "releases missing from installer/platform/order.py"
    assert _unplaced([n for n in ORDER if n != "harbor"]) == ["harbor"]  # the check names a dropped release


def test_the_order_puts_every_release_after_what_it_needs():
    for i, name in enumerate(ORDER):
        for need in NEEDS[name]:
            assert need in ORDER[:i], f"{name} needs {need}, which comes after it"


def test_a_new_model_version_is_served_only_once_its_pods_are_ready(cluster, tmp_path):
    """The one model switch (installer.inference.switch) as the medai-inference release's hook: the new version's
    Deployment is started beside the old one while the Service keeps the old version, the Service is switched once
    the new pods are Ready, then the rendered values are applied so Helm's record is the render."""
    import subprocess

    from installer.bundle.manifest import Chart
    from installer.inference.switch import VERSION_LABEL
    from installer.platform.apply import ApplyOptions, apply_platform
    from installer.platform.render import Release, SiteRender
    from installer.render.gate import ImagePlan

    subprocess.run([str(ROOT / ".tools/bin/helm"), "package", str(ROOT / "charts/medai-inference"), "-d", str(tmp_path)],
                   check=True, capture_output=True)
    archive = next(tmp_path.glob("medai-inference-*.tgz"))
    version = archive.name.removeprefix("medai-inference-").removesuffix(".tgz")
    ns, name = "medai-inference", "medai-inference"
    v1 = {"models": [{"version": "v1"}], "activeVersion": "v1"}
    rendered = {"models": [{"version": "v1"}, {"version": "v2"}], "activeVersion": "v2"}
    cluster.releases[(name, ns)] = [{"revision": 1, "status": "deployed", "chart": f"medai-inference-{version}",
                                     "values": v1, "description": "Install complete"}]
    cluster.lists[("v1", "Service")] = [{"metadata": {"name": name, "namespace": ns},
                                         "spec": {"selector": {VERSION_LABEL: "v1"}}}]
    cluster.lists[("apps/v1", "Deployment")] = [{
        "metadata": {"name": f"{name}-v2", "namespace": ns, "generation": 1}, "spec": {"replicas": 1},
        "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1,
                   "availableReplicas": 1}}]
    chart = Chart(name="medai-inference", version=version, repo="oci://local", namespace=ns)
    site = SiteRender([Release(name, chart, archive, ns, rendered, [], [])], ImagePlan(), None, None, {})
    opts = ApplyOptions()
    platform_step.wire_model_switch(opts, site, cluster, cluster)
    apply_platform(site, cluster, cluster, opts)
    steps = [(c[0], c[4]["activeVersion"]) if c[0] == "upgrade_install" else c[:2] for c in cluster.calls
             if c[0] in ("upgrade_install", "apply")]
    assert steps == [("upgrade_install", "v1"), ("apply", "Service"), ("upgrade_install", "v2")]
    assert cluster.get("v1", "Service", name, ns)["spec"]["selector"][VERSION_LABEL] == "v2"
    assert cluster.releases[(name, ns)][-1]["values"] == rendered  # Helm's record is the render
