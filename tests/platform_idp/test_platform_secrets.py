"""The one secrets catalogue (installer/deploy/vault/catalogue.py), statically: the shapes the charts require, and
every Secret name and key that the rendered charts, the CNPG Clusters and the keycloak-config-cli Job reference
is produced by the catalogue's sync (no dangling reference), and every catalogue Secret and entry is used
(no unused entry). Rendered with the install's own code path (installer.platform.values) and the real upstream
charts; nothing here talks to a cluster or to Vault (tests/vault/test_kv_sink.py does, against OpenBao)."""
from __future__ import annotations

import copy

import bcrypt
import pytest
import yaml

from installer.deploy.platform_secrets import REGISTRY_USER, harbor_makers
from installer.deploy.vault.catalogue import build, default_catalogue, ensure, for_inventory
from tests.platform_idp.harbor_contract import DictSink
from tests.platform_idp.site import SITE_VARS
from tests.support.fixture_charts import ROOT, needs_fixtures


def test_harbor_values_have_the_shapes_harbor_needs():
    made = {item: make() for item, _key, make in harbor_makers()}
    for item, _key, make in harbor_makers():
        assert set(made[item]) == set(make.fields), item
    assert len(made["secret-key"]["secretKey"]) == 16
    user, _, hashed = made["registry-credentials"]["REGISTRY_HTPASSWD"].partition(":")
    assert user == REGISTRY_USER and bcrypt.checkpw(made["registry-credentials"]["REGISTRY_PASSWD"].encode(), hashed.encode())
    assert made["core-token"]["tls.crt"].startswith("-----BEGIN CERTIFICATE-----")
    redis = made["redis"]  # Harbor's Redis: the clients' password, and Redis's own line with the same value
    assert redis["password"].isalnum() and redis["requirepass.conf"] == f"requirepass {redis['password']}\n"


def test_each_secret_is_generated_once_and_reruns_keep_it():
    cat, sink = default_catalogue(), DictSink()
    created, kept = ensure(cat, sink)
    assert kept == [] and len(created) == len(cat.generated())
    assert "harbor/admin" in created and created.count("harbor/admin") == 1
    # Harbor's admin password: one entry in the whole catalogue, read by the chart's Secret and by medai's API calls
    assert [e.path for e in cat.entries if e.component == "harbor" and "admin" in e.name] == ["harbor/admin"]
    first = copy.deepcopy(sink.data)
    assert ensure(cat, sink) == ([], created) and sink.data == first


def test_paths_have_no_cluster_name_and_every_secret_reads_only_its_components_entries():
    cat = default_catalogue()
    for e in cat.entries:
        assert e.path.split("/")[0] == e.component and "radiology" not in e.path
    for s in cat.secrets:
        assert all(p.startswith(s.component + "/") for p in s.paths), s.name
        assert s.namespace == cat.component(s.component).namespace


def test_a_database_of_no_component_is_refused_in_one_line():
    with pytest.raises(Exception, match=r"^site.yml: all.vars.medai_postgres_databases: database 'grafana'"):
        build(databases=[{"name": "grafana", "namespace": "monitoring", "owner": "grafana"}], source="site.yml")


# ---------------------------------------------------------------------------------------- dangling / unused


def _inventory(tmp_path):
    from installer.deploy.inventory import load_inventory

    doc = yaml.safe_load((ROOT / "inventories" / "example" / "site.yml").read_text())
    doc["all"]["vars"].update({k: v for k, v in SITE_VARS.items() if k.startswith("medai_keycloak_")})
    (tmp_path / "site.yml").write_text(yaml.safe_dump(doc))
    return load_inventory(tmp_path / "site.yml")


def _refs(objs: list[dict]) -> set[tuple[str, str, str | None]]:
    """(namespace, Secret name, key or None for 'the whole Secret') for every reference in pods and CNPG Clusters."""
    out = set()
    for o in objs:
        ns = (o.get("metadata") or {}).get("namespace")
        if o.get("kind") == "Cluster":
            out.add((ns, o["spec"]["bootstrap"]["initdb"]["secret"]["name"], None))
            continue
        spec = o.get("spec") or {}
        pod = (spec.get("template") or {}).get("spec") or spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec")
        if o.get("kind") not in ("Deployment", "StatefulSet", "DaemonSet", "Job") or not pod:
            continue
        for c in (pod.get("containers") or []) + (pod.get("initContainers") or []):
            for e in c.get("env") or []:
                ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    out.add((ns, ref["name"], ref["key"]))
            for ef in c.get("envFrom") or []:
                if ef.get("secretRef"):
                    out.add((ns, ef["secretRef"]["name"], None))
        for v in pod.get("volumes") or []:
            if v.get("secret"):
                items = v["secret"].get("items") or []
                for it in items:
                    out.add((ns, v["secret"]["secretName"], it["key"]))
                if not items:
                    out.add((ns, v["secret"]["secretName"], None))
            for src in (v.get("projected") or {}).get("sources") or []:
                if src.get("secret"):
                    out.add((ns, src["secret"]["name"], None))
    return out


@needs_fixtures
def test_every_secret_reference_is_produced_by_the_catalogue_sync_and_nothing_in_it_is_unused(tmp_path):
    from installer.deploy.idp_step import realm_job_objects, without_bootstrap_env
    from installer.platform.components import postgres
    from installer.platform.values import release_values, role_vars
    from installer.render.helm import k3s_kube_version, render_chart
    from tests.support.fixture_charts import archive, chart, platform

    inv = _inventory(tmp_path)
    cat = for_inventory(inv)
    kube = k3s_kube_version(platform().spec)
    index = {"artifacts": [{"kind": "image", "ref": "docker.io/adorsys/keycloak-config-cli:6.5.1-26.0.5",
                            "digest": "sha256:" + "cd" * 32}]}
    objs: list[dict] = []
    for name in ("keycloakx", "medai-harbor-redis", "harbor"):
        c = chart(name)
        values = release_values(c, inv)
        variants = [values] + ([without_bootstrap_env(values)] if name == "keycloakx" else [])
        for v in variants:
            for o in render_chart(c.name, c.version, archive(name), v, c.namespace, kube, c.releaseName):
                o.setdefault("metadata", {}).setdefault("namespace", c.namespace)
                objs.append(o)
    objs += postgres.objects(role_vars("postgres", inv, {"artifacts": [{"kind": "image", "ref": "ghcr.io/cloudnative-pg/postgresql:17.5",
                                                  "digest": "sha256:" + "ab" * 32}]}))
    for bootstrap in (True, False):
        objs += realm_job_objects(inv, index, bootstrap)
    chart_made = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in objs if o.get("kind") == "Secret"}
    synced = {(s.namespace, s.name): set(s.keys) for s in cat.secrets}

    refs = _refs(objs)
    # medai-inference renders only with the bundle index's vLLM digest and weight lists (tests/render covers that);
    # the Secrets it mounts are named by its values, taken here from the same release_values
    iv = release_values(chart("medai-inference"), inv)
    ins = chart("medai-inference").namespace
    refs |= {(ins, iv["apiKey"]["secretName"], iv["apiKey"]["secretKey"]), (ins, iv["loadBalancer"]["tlsSecretName"], None)}
    assert len(refs) >= 20  # the walk itself finds the references (a walk that finds none proves nothing)
    dangling = [(ns, n, k) for ns, n, k in refs if (ns, n) not in chart_made
                and ((ns, n) not in synced or (k is not None and k not in synced[(ns, n)]))]
    assert dangling == [], dangling
    referenced = {(ns, n) for ns, n, _ in refs}
    assert sorted(set(synced) - referenced) == []  # every synced Secret is read by something
    sourced = {p for s in cat.secrets for p in s.paths}
    unused = [e.path for e in cat.entries if e.path not in sourced and not e.read_by]
    assert unused == []


def test_the_walk_catches_a_dangling_reference():
    """The guard above can fail: a reference to a Secret the catalogue does not sync is reported."""
    job = {"kind": "Job", "metadata": {"namespace": "keycloak", "name": "j"}, "spec": {"template": {"spec": {
        "containers": [{"name": "c", "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}]}]}}}}
    refs = _refs([job])
    synced = {(s.namespace, s.name) for s in default_catalogue().secrets}
    assert refs == {("keycloak", "nope", "k")} and ("keycloak", "nope") not in synced
