"""`medai render` on inventories/example with a bundle of the real fixture charts, checked by a second tool:
`helm template` of the same archive, values, namespace and Kubernetes version gives the same objects."""
from __future__ import annotations

import subprocess

import pytest
import yaml

from installer.core.helm import helm_executable
from tests.support.fixture_bundles import make_fixture_bundle
from tests.support.fixture_charts import FIXTURES, ROOT, needs_fixtures

pytestmark = needs_fixtures
INVENTORY = ROOT / "inventories" / "example" / "site.yml"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return make_fixture_bundle(tmp_path_factory.mktemp("bundle") / "b")


class _Result:
    def __init__(self, proc):
        self.exit_code = proc.returncode
        self.output = proc.stdout + proc.stderr


class _Cli:
    """The real `medai` entry point in a child process: exit codes and one-line errors as an operator sees them."""

    def invoke(self, _app, args):
        import sys
        return _Result(subprocess.run([sys.executable, "-m", "installer.cli.main", *args], cwd=ROOT,
                                      capture_output=True, text=True, timeout=300))


app = None


@pytest.fixture(scope="module")
def cli():
    return _Cli()


@pytest.fixture(scope="module")
def rendered_dir(bundle, cli, tmp_path_factory):
    out = tmp_path_factory.mktemp("render") / "out"
    res = cli.invoke(app, ["render", "--inventory", str(INVENTORY), "--bundle", str(bundle), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "images, all in the bundle; Kubernetes 1.34.2 (schemas 1.34.0)" in res.output
    return out


def _objects(text: str) -> list[dict]:
    return sorted((d for d in yaml.safe_load_all(text) if d),
                  key=lambda d: (d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]))


def test_one_file_per_release_in_apply_order(rendered_dir):
    names = sorted(p.name for p in rendered_dir.iterdir())
    assert names == ["01-cilium.values.yaml", "01-cilium.yaml", "02-metallb.site.yaml", "02-metallb.values.yaml",
                     "02-metallb.yaml", "03-longhorn.site.yaml", "03-longhorn.values.yaml", "03-longhorn.yaml"]


@pytest.mark.parametrize("stem,chart,ns", [("01-cilium", "cilium-1.18.0", "kube-system"),
                                           ("02-metallb", "metallb-0.15.3", "metallb-system"),
                                           ("03-longhorn", "longhorn-1.9.1", "longhorn-system")])
def test_helm_template_of_the_same_inputs_gives_the_same_objects(rendered_dir, bundle, stem, chart, ns):
    release = stem.split("-", 1)[1]
    helm = subprocess.run([helm_executable(), "template", release, str(bundle / "charts" / f"{chart}.tgz"),
                           "--include-crds", "--namespace", ns, "--kube-version", "1.34.2",
                           "-f", str(rendered_dir / f"{stem}.values.yaml")],
                          capture_output=True, text=True, check=True).stdout
    ours = _objects((rendered_dir / f"{stem}.yaml").read_text())
    assert len(ours) > 5
    assert ours == _objects(helm)


def test_site_values_from_the_inventory(rendered_dir):
    cilium = yaml.safe_load((rendered_dir / "01-cilium.values.yaml").read_text())
    assert cilium["k8sServiceHost"] == "127.0.0.1" and cilium["k8sServicePort"] == 6444  # K3s's node-local API
    assert cilium["operator"]["replicas"] == 2 and cilium["kubeProxyReplacement"] is True
    longhorn = yaml.safe_load((rendered_dir / "03-longhorn.values.yaml").read_text())
    assert longhorn["defaultSettings"]["defaultReplicaCount"] == 3  # min(3, 5 storage nodes)
    assert longhorn["defaultSettings"]["nodeDrainPolicy"] == "block-for-eviction-if-contains-last-replica"
    site = _objects((rendered_dir / "02-metallb.site.yaml").read_text())
    pool = next(o for o in site if o["kind"] == "IPAddressPool")
    assert pool["spec"]["addresses"] == ["10.20.0.200-10.20.0.220"]  # medai_metallb_pool
    assert any(o["kind"] == "L2Advertisement" and o["spec"]["ipAddressPools"] == ["medai-site"] for o in site)
    metallb = (rendered_dir / "02-metallb.yaml").read_text()
    assert not [o for o in _objects(metallb) if "frr" in o["metadata"]["name"]]


def test_longhorn_configmap_settings_follow_the_inventory(rendered_dir):
    cm = next(o for o in _objects((rendered_dir / "03-longhorn.yaml").read_text())
              if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "longhorn-default-setting")
    settings = cm["data"]["default-setting.yaml"]
    assert "default-replica-count: 3" in settings.replace('"', "")


def test_a_bundle_lacking_an_image_is_refused_naming_it(tmp_path, cli):
    b = make_fixture_bundle(tmp_path / "b", omit=("docker.io/longhornio/support-bundle-kit:v0.0.61",))
    res = cli.invoke(app, ["render", "--inventory", str(INVENTORY), "--bundle", str(b), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert ("image docker.io/longhornio/support-bundle-kit:v0.0.61 is not in the bundle (needed by chart longhorn, "
            "DaemonSet longhorn-manager, spec.template.spec.containers[0].command[") in " ".join(res.output.split())
    assert not (tmp_path / "o").exists()  # nothing half-written


def test_an_altered_chart_archive_is_refused(tmp_path, cli):
    b = make_fixture_bundle(tmp_path / "b")
    with open(b / "charts" / "metallb-0.15.3.tgz", "ab") as f:
        f.write(b"\0")
    res = cli.invoke(app, ["render", "--inventory", str(INVENTORY), "--bundle", str(b), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "metallb-0.15.3.tgz: sha256 differs from index.json" in " ".join(res.output.split())


def test_charts_images_why(cli):
    res = cli.invoke(app, ["charts", "images", str(FIXTURES / "longhorn-1.9.1.tgz"), "-n", "longhorn-system",
                           "--kube-version", "1.34.2", "--why", "longhornio/support-bundle-kit:v0.0.61", "--json"])
    assert res.exit_code == 0, res.output
    import json
    found = json.loads(res.output)
    assert [(f["kind"], f["name"]) for f in found] == [("DaemonSet", "longhorn-manager")]
    assert found[0]["path"].startswith("spec.template.spec.containers[0].command[")


def test_charts_images_with_values_file(cli, tmp_path):
    values = tmp_path / "v.yaml"
    values.write_text("gfd: {enabled: true}\n")
    res = cli.invoke(app, ["charts", "images", str(FIXTURES / "nvidia-device-plugin-0.17.4.tgz"), "-n", "nvidia",
                           "--values", str(values)])
    assert res.exit_code == 0, res.output
    assert "registry.k8s.io/nfd/node-feature-discovery:v0.15.3" in res.output
    res = cli.invoke(app, ["charts", "images", str(FIXTURES / "nvidia-device-plugin-0.17.4.tgz"), "-n", "nvidia",
                           "--why", "quay.io/nope/x:1"])
    assert res.exit_code == 2 and "not found in chart nvidia-device-plugin" in res.output
