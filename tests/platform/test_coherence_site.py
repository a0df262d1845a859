"""The coherence check on the full platform render (every upstream fixture chart, tests.support.render_platform):
inventories/example (3 servers, 2 GPU agents), a site with a plain and a GPU agent, and the fewest nodes the
inventory check accepts (one server) pass every check; a mutation of the real render fails naming the object; the
reproducible render command writes one file per release with its Namespace; `medai render` refuses an incoherent
render after writing it."""
from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from installer.deploy.coherence_step import findings
from installer.platform.coherence import check_site
from installer.platform.site_flows import declared
from tests.support.fixture_bundles import fixture_manifest, make_fixture_bundle
from tests.support.fixture_charts import FIXTURES, ROOT, needs_fixtures
from tests.support.render_platform import fixture_render, main, write

pytestmark = needs_fixtures
EXAMPLE = ROOT / "inventories" / "example" / "site.yml"
SITE_VARS = {"medai_metallb_pool": "10.30.0.200-10.30.0.220", "medai_vault_domain": "site.example",
             "medai_harbor_hostname": "harbor.site.example",
             "medai_keycloak_hostname": "keycloak.site.example", "medai_keycloak_clients": {
                 "harbor": {"redirect_uris": ["https://harbor.site.example/c/oidc/callback"]},
                 "medical-ai-api": {"redirect_uris": ["https://api.site.example/oauth2/callback"]},
                 "medical-ai-web": {"redirect_uris": ["https://ai.site.example/auth/callback"]}}}


def _write(tmp_path, name: str, servers: dict, agents: dict, gpu: dict) -> str:
    children = {"servers": {"hosts": servers}, "agents": {"hosts": agents}}
    if gpu:
        children["gpu"] = {"hosts": gpu}
    doc = {"all": {"vars": {"medai_cluster_name": name, **SITE_VARS}, "children": children}}
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


@pytest.fixture(scope="module")
def inventories(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("inventories")
    return {
        "example": str(EXAMPLE),
        "gpu": _write(tmp, "gpu-site", {"srv-1": {"ansible_host": "10.30.0.11"}},
                      {"cpu-1": {"ansible_host": "10.30.0.21"}, "gpu-1": {"ansible_host": "10.30.0.22"}},
                      {"gpu-1": {}}),
        "minimal": _write(tmp, "minimal-site", {"srv-1": {"ansible_host": "10.30.0.11"}}, {}, {}),
    }


@pytest.mark.parametrize("site", ["example", "gpu", "minimal"])
def test_the_full_platform_render_is_coherent(inventories, site):
    r = fixture_render(inventories[site])
    found = [str(f) for f in findings(r.inv, r.site, r.index)]
    assert found == [], "\n".join(found)


def _obj(r, kind: str, name: str, namespace: str | None = None) -> dict:
    return next(o for rel in r.site.releases for o in rel.objects + rel.site_objects
                if o["kind"] == kind and o["metadata"]["name"] == name
                and namespace in (None, o["metadata"].get("namespace", rel.namespace)))


def _new_findings(r) -> list[str]:
    return [str(f) for f in check_site(r.site, r.inv, declared(r.inv), r.outside)]


@pytest.fixture
def example(inventories):
    r = fixture_render(inventories["example"])
    return r, set(_new_findings(r))


def _added(example_pair) -> list[str]:
    r, before = example_pair
    return [f for f in _new_findings(r) if f not in before]


def test_a_removed_service_port_names_its_users(example):
    svc = _obj(example[0], "Service", "medai-harbor-redis")
    svc["spec"]["ports"] = [p for p in svc["spec"]["ports"] if p["port"] != 6379]
    added = _added(example)
    assert any(f.startswith("references: release harbor: ConfigMap harbor/harbor-core: data._REDIS_URL_CORE: ")
               and "medai-harbor-redis:6379: Service harbor/medai-harbor-redis has no port 6379" in f
               for f in added), added


def test_a_misspelt_secret_names_the_pod_template(example):
    sts = _obj(example[0], "StatefulSet", "keycloakx")
    vol = next(v for v in sts["spec"]["template"]["spec"]["volumes"] if "secret" in v)
    vol["secret"]["secretName"] += "x"
    added = _added(example)
    assert any(f.startswith("references: release keycloakx: StatefulSet keycloak/keycloakx: spec.template.spec.volumes")
               and "is neither rendered nor created by the install" in f for f in added), added


def test_a_dropped_toleration_names_the_daemonset(example):
    ds = _obj(example[0], "DaemonSet", "nvidia-device-plugin")
    ds["spec"]["template"]["spec"]["tolerations"] = [
        t for t in ds["spec"]["template"]["spec"]["tolerations"] if t.get("key") != "gpu"]
    added = _added(example)
    assert "scheduling: release nvidia-device-plugin: DaemonSet nvidia-device-plugin/nvidia-device-plugin: " \
           "spec.template.spec.tolerations: selects node gpu-node-1 but does not tolerate its taint " \
           "gpu=true:NoSchedule" in added, added


def test_a_host_path_in_a_restricted_namespace_names_the_pod(example):
    from installer.platform.coherence.admission import pod_table

    r = example[0]
    row = next(p for p in pod_table(r.site, r.inv)[1] if p.level.level == "restricted" and not p.hook)
    obj = _obj(r, row.kind, row.name, row.namespace)
    spec = obj["spec"]["template"]["spec"] if "template" in obj["spec"] else obj["spec"]
    spec.setdefault("volumes", []).append({"name": "host", "hostPath": {"path": "/etc"}})
    added = _added(example)
    assert any(f.startswith(f"podsecurity: release {row.release}: {row.kind} {row.namespace}/{row.name}: ")
               and "hostPath" in f for f in added), added


def test_a_dropped_certificate_name_names_its_client(example):
    r = example[0]
    vault = next(c for c in r.outside.certificates if c.component == "vault")
    r.outside.certificates[r.outside.certificates.index(vault)] = type(vault)(
        vault.component, vault.namespace, vault.secret, tuple(n for n in vault.names if n != "vault.vault.svc"))
    added = _added(example)
    assert any(f.startswith("tls: release vault: ") and "vault.vault.svc: Service vault/vault serves the "
               "certificate of Secret vault/vault-tls" in f for f in added), added


def test_the_reproducible_render_writes_one_file_per_release(inventories, tmp_path):
    written = write(fixture_render(inventories["gpu"]), tmp_path / "out")
    assert [p.name for p in written][:3] == ["01-cilium.yaml", "02-metallb.yaml", "03-longhorn.yaml"]
    assert len(written) == 9
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    docs = {p: [d for d in yaml.load_all(p.read_text(), Loader=loader) if d] for p in written}
    made: set[str] = set()
    for path in written:  # each release's file opens with its namespace unless an earlier one made it
        ns = path.read_text().split("namespace ", 1)[1].split("\n", 1)[0]
        here = {d["metadata"]["name"] for d in docs[path] if d["kind"] == "Namespace"}
        assert ns in made | here, path
        made |= here
    assert any(d["kind"] == "Deployment" and d["metadata"]["name"] == "harbor-core"
               for d in docs[tmp_path / "out" / "08-harbor.yaml"])
    assert any(d["kind"] == "Job" and d["metadata"]["name"].startswith("keycloak-config-cli-")
               for d in docs[tmp_path / "out" / "06-keycloakx.yaml"])


def test_the_documented_command(tmp_path, capsys):
    charts = tmp_path / "charts"
    charts.mkdir()
    for name in ("metallb-0.15.3.tgz",):
        (charts / name).symlink_to(FIXTURES / name)
    assert main(["--inventory", str(EXAMPLE), "--charts", str(charts), str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["01-metallb.yaml"]
    out = capsys.readouterr()
    assert str(tmp_path / "out" / "01-metallb.yaml") in out.out and "coherence finding(s)" in out.err


def test_medai_render_refuses_an_incoherent_render_after_writing_it(tmp_path):
    bundle = make_fixture_bundle(tmp_path / "b", fixture_manifest(("longhorn",)))
    inv = _write(tmp_path, "refused", {"srv-1": {"ansible_host": "10.30.0.11"}}, {}, {})
    doc = yaml.safe_load(open(inv))
    doc["all"]["vars"]["medai_k3s_disable"] = ["traefik", "servicelb"]  # K3s's local-path stays, a default too
    open(inv, "w").write(yaml.safe_dump(doc))
    res = subprocess.run([sys.executable, "-m", "installer.cli.main", "render", "--inventory", inv, "--bundle",
                          str(bundle), "--out", str(tmp_path / "o")], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode != 0
    assert "the platform cannot come up as rendered" in res.stderr
    assert "references: release (cluster): StorageClass (default): annotations.storageclass.kubernetes.io/" \
           "is-default-class: 2 default StorageClasses, exactly one is needed: local-path" in res.stderr
    assert (tmp_path / "o" / "01-longhorn.yaml").is_file()


def test_medai_install_refuses_an_incoherent_platform_before_any_host(tmp_path):
    """The bundle carries K3s, so the install will apply the platform: the gate runs before any host is contacted."""
    bundle = make_fixture_bundle(tmp_path / "b", fixture_manifest(("longhorn",)), files={"k3s": b"stand-in binary\n"})
    inv = _write(tmp_path, "refused", {"srv-1": {"ansible_host": "127.0.0.1"}}, {}, {})
    doc = yaml.safe_load(open(inv))
    doc["all"]["vars"].update({"medai_k3s_disable": ["traefik", "servicelb"], "ansible_port": 1,
                               "medai_ssh_host_key_checking": False})
    open(inv, "w").write(yaml.safe_dump(doc))
    home = tmp_path / "home"
    res = subprocess.run([sys.executable, "-m", "installer.cli.main", "install", "--inventory", inv, "--bundle",
                          str(bundle), "--insecure-skip-signature", "--yes"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, env={"PATH": f"{ROOT / '.venv' / 'bin'}:/usr/bin:/bin", "MEDAI_HOME": str(home),
                                           "COLUMNS": "300"})
    assert res.returncode != 0, res.stdout + res.stderr
    assert "the platform cannot come up as rendered" in res.stderr
    assert "2 default StorageClasses, exactly one is needed: local-path" in res.stderr
    assert not (home / "runs").exists() or not any((home / "runs").iterdir())  # no run started, no host contacted
