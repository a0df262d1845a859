"""Harbor's Redis requires a password from Vault (docs/harbor.md, "Redis"). The project's chart
charts/medai-harbor-redis runs it with `requirepass` read from the Secret the install syncs from Vault (catalogue
entry harbor/redis); Harbor's chart runs with `redis.type: external` and no password in its values, and every
Redis client container gets the password by secretKeyRef (its URLs expanded from it when the container starts).
Checked on the full platform render of the fixture charts with the Secrets the install makes from a catalogue
whose password the test knows: each container's environment is resolved as the kubelet resolves it (envFrom,
then env in order, `$(VAR)` of an earlier entry expanded, the last entry of a name winning); no ConfigMap, chart
value, rendered Secret or other object carries the password in any encoding."""
from __future__ import annotations

import base64
import copy
import re
import tarfile
from urllib.parse import quote

import pytest
import yaml

from installer.deploy.vault.catalogue import HARBOR, ensure, for_inventory, secret_objects
from installer.platform.components import harbor as harbor_component
from installer.platform.values import merge, role_vars
from installer.render.errors import RenderError
from installer.render.helm import render_chart
from installer.render.netpol import Endpoint, NetworkPolicies
from installer.render.podsecurity import least_level
from tests.platform_idp.harbor_contract import DictSink
from tests.support.fixture_charts import FIXTURES, ROOT, needs_fixtures
from tests.support.render_platform import fixture_render

pytestmark = needs_fixtures
EXAMPLE = ROOT / "inventories" / "example" / "site.yml"
REDIS = harbor_component.REDIS_RELEASE
ADDRESS = f"{REDIS}:{harbor_component.REDIS_PORT}"
PODS = ("Deployment", "StatefulSet", "DaemonSet", "Job")
# every Redis client of Harbor 2.13 as the chart runs it (metrics off: no exporter): (workload, container)
CLIENTS = {("harbor-core", "core"), ("harbor-jobservice", "jobservice"), ("harbor-registry", "registry"),
           ("harbor-registry", "registryctl"), ("harbor-trivy", "trivy")}
# a Redis address in a mounted configuration file, and the variable the program reads over it
FILE_OVERRIDES = {"redis_url:": "JOB_SERVICE_POOL_REDIS_URL", f"addr: {ADDRESS}": "REGISTRY_REDIS_PASSWORD"}


@pytest.fixture(scope="module")
def site():
    """The example site's render, the Secrets the install syncs from Vault, and the Redis password in them."""
    r = fixture_render(EXAMPLE)
    cat, sink = for_inventory(r.inv), DictSink()
    ensure(cat, sink)  # what medai generates; Vault's PKI issues the TLS entries (stand-ins here)
    secrets = secret_objects(cat, lambda p: sink.data.get(p) or {f: f"PKI {f}" for f in cat.entry(p).fields})
    return r, secrets, sink.data[f"{HARBOR}/redis"]["password"]


def _objects(r) -> list[tuple[str, dict]]:
    return [(rel.namespace, o) for rel in r.site.releases for o in rel.objects + rel.site_objects] + \
           [(o.get("metadata", {}).get("namespace", ""), o) for _, o in r.outside.applied]


def _ns(default: str, o: dict) -> str:
    return (o.get("metadata") or {}).get("namespace") or default


def _data(o: dict) -> dict[str, str]:
    if o["kind"] == "Secret":
        out = {k: base64.b64decode(v).decode() for k, v in (o.get("data") or {}).items()}
        return out | dict(o.get("stringData") or {})
    return dict(o.get("data") or {})


def _expand(value: str, env: dict[str, tuple[str, bool]]) -> tuple[str, bool]:
    """Kubernetes' $(VAR) expansion of an env value against the entries before it; (value, secret went into it)."""
    used = [m for m in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", value) if m in env]
    for name in used:
        value = value.replace(f"$({name})", env[name][0])
    return value, any(env[n][1] for n in used)


def _environment(c: dict, ns: str, by_key: dict) -> dict[str, tuple[str, bool]]:
    """The container's environment as the kubelet builds it: name -> (value, taken from a Secret). A reference to
    an object neither rendered nor made by the install is left out (an optional one; the coherence check refuses
    the others)."""
    env: dict[str, tuple[str, bool]] = {}
    for ef in c.get("envFrom") or []:
        kind, ref = ("Secret", ef["secretRef"]) if "secretRef" in ef else ("ConfigMap", ef["configMapRef"])
        for k, v in _data(by_key.get((kind, ns, ref["name"]), {"kind": kind})).items():
            env[ef.get("prefix", "") + k] = (v, kind == "Secret")
    for e in c.get("env") or []:
        src = e.get("valueFrom") or {}
        if "value" in e:
            env[e["name"]] = _expand(str(e["value"]), env)
        for kind, key in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
            ref = src.get(key)
            value = _data(by_key.get((kind, ns, ref["name"]), {"kind": kind})).get(ref["key"]) if ref else None
            if value is not None:
                env[e["name"]] = (value, kind == "Secret")
    return env


def _mounted_config(pod: dict, c: dict, ns: str, by_key: dict) -> str:
    mounted = {m["name"] for m in c.get("volumeMounts") or []}
    return "\n".join(v for vol in pod.get("volumes") or [] if vol["name"] in mounted and "configMap" in vol
                     for v in _data(by_key.get(("ConfigMap", ns, vol["configMap"]["name"]), {"kind": "ConfigMap"})).values())


def _redis_settings(r, secrets: list[dict]) -> dict[tuple[str, str], dict[str, tuple[str, bool]]]:
    """(workload, container) -> {setting: (effective value, from a Secret)} for every container that reads a Redis
    address: each redis:// variable, and for an address in a mounted configuration file the variable overriding it."""
    objs = _objects(r) + [(s["metadata"]["namespace"], s) for s in secrets]
    by_key = {(o["kind"], _ns(ns, o), o["metadata"]["name"]): o for ns, o in objs if o["kind"] in ("ConfigMap", "Secret")}
    out = {}
    for ns, o in objs:
        if o["kind"] not in PODS:
            continue
        pod = o["spec"]["template"]["spec"]
        for c in (pod.get("containers") or []) + (pod.get("initContainers") or []):
            env = _environment(c, _ns(ns, o), by_key)
            found = {k: v for k, v in env.items() if v[0].startswith(("redis://", "rediss://"))}
            config = _mounted_config(pod, c, _ns(ns, o), by_key)
            for marker, var in FILE_OVERRIDES.items():
                if marker in config and ADDRESS in config:
                    found[var] = env.get(var, ("", False))
            if found:
                out[(o["metadata"]["name"], c["name"])] = found
    return out


def test_every_redis_client_container_gets_the_password_from_the_vault_secret(site):
    r, secrets, password = site
    settings = _redis_settings(r, secrets)
    assert set(settings) == CLIENTS, sorted(settings)
    names = [rel.name for rel in r.site.releases]
    assert names.index(REDIS) < names.index("harbor")  # Redis is up before Harbor's pods wait for it
    assert not any(o["metadata"]["name"].endswith("-exporter") for _, o in _objects(r))  # metrics off: no other client
    for client, found in settings.items():
        for name, (value, from_secret) in found.items():
            assert from_secret, (client, name)
            if value.startswith("redis://"):
                assert value.startswith(f"redis://:{password}@{ADDRESS}/"), (client, name)
            else:
                assert value == password, (client, name)
    # what carries it: the Secret the install syncs from Vault, read by secretKeyRef only
    harbor = next(rel for rel in r.site.releases if rel.name == "harbor")
    refs = {e["valueFrom"]["secretKeyRef"]["name"] for o in harbor.objects if o["kind"] in PODS
            for c in o["spec"]["template"]["spec"]["containers"] for e in c.get("env") or []
            if "secretKeyRef" in (e.get("valueFrom") or {}) and e["name"].endswith("REDIS_PASSWORD")}
    assert refs == {role_vars("harbor", r.inv)["medai_harbor_secret_names"]["redis"]}


def _encodings(password: str) -> set[str]:
    return {password, quote(password, safe=""), base64.b64encode(password.encode()).decode(),
            base64.b64encode(f"requirepass {password}\n".encode()).decode()}


def _leaks(objects, password: str) -> list[str]:
    """Every object (or values document) holding the password: plain, URL-encoded or base64, a Secret's data
    decoded first (so a password inside a longer base64 value is found too)."""
    out = []
    for name, o in objects:
        text = yaml.safe_dump(o)
        if isinstance(o, dict) and o.get("kind") == "Secret":
            text += "\n".join(_data(o).values())
        if any(e in text for e in _encodings(password)):
            out.append(name)
    return out


def test_no_configmap_value_or_rendered_object_carries_the_password(site):
    r, secrets, password = site
    docs = [(f"{o['kind']} {_ns(ns, o)}/{o['metadata']['name']}", o) for ns, o in _objects(r)]
    docs += [(f"values of {rel.name}", rel.values) for rel in r.site.releases]  # what Helm's release record keeps
    assert len(docs) > 200 and _leaks(docs, password) == []
    # only the Secret the install makes from Vault holds it (its two keys: the clients' and Redis's own line)
    carried = _leaks([(s["metadata"]["name"], s) for s in secrets], password)
    assert carried == [role_vars("harbor", r.inv)["medai_harbor_secret_names"]["redis"]]
    (made,) = [s for s in secrets if s["metadata"]["name"] == carried[0]]
    assert _data(made) == {"password": password, "requirepass.conf": f"requirepass {password}\n"}
    assert made["metadata"]["namespace"] == "harbor"


def _external(rel, **external) -> list[dict]:
    values = merge(copy.deepcopy(rel.values), {"redis": {"external": external}})
    return render_chart(rel.chart.name, rel.chart.version, rel.archive, values, rel.namespace, None, rel.name)


def test_the_charts_own_password_settings_would_leak_it_or_not_render(site):
    """Why the password reaches Harbor by secretKeyRef and not by the chart's settings: `existingSecret` is read with
    Helm's lookup (no render without a cluster), `password` lands in ConfigMaps and Secrets (the check above finds
    it there: it can fail)."""
    r, _, password = site
    rel = next(x for x in r.site.releases if x.name == "harbor")
    with pytest.raises(RenderError, match="chart harbor 1.17.0: cannot render"):
        _external(rel, existingSecret="harbor-redis")
    inline = _external(rel, password=password)
    leaked = _leaks([(f"{o['kind']} {o['metadata']['name']}", o) for o in inline], password)
    assert {"ConfigMap harbor-core", "ConfigMap harbor-jobservice", "Secret harbor-trivy"} <= set(leaked), leaked


def _redis_objects(r) -> dict[str, dict]:
    rel = next(x for x in r.site.releases if x.name == REDIS)
    return {o["kind"]: o for o in rel.objects}


def test_the_redis_pod_is_restricted_and_reads_its_password_from_the_mounted_secret(site):
    r, _, password = site
    hv = role_vars("harbor", r.inv)
    objs = _redis_objects(r)
    sts = objs["StatefulSet"]
    assert least_level(sts) == "restricted"
    ns = next(o for _, o in _objects(r) if o["kind"] == "Namespace" and o["metadata"]["name"] == "harbor")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    pod = sts["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["seccompProfile"] == {
        "type": "RuntimeDefault"}
    assert c["resources"] == hv["medai_harbor_resources"]["redis"] and c["resources"]["limits"]["memory"]
    assert "env" not in c and "envFrom" not in c and c.get("args") is None  # the password in no process argument
    assert c["command"] == ["redis-server", "/etc/redis/redis.conf"]
    # redis.conf (a ConfigMap) includes the file the Secret's key requirepass.conf is mounted as
    conf = objs["ConfigMap"]["data"]["redis.conf"]
    include = re.search(r"^include (\S+)$", conf, re.M).group(1)
    vols = {v["name"]: v for v in pod["volumes"]}
    mount = next(m for m in c["volumeMounts"] if include.startswith(m["mountPath"] + "/"))
    secret = vols[mount["name"]]["secret"]
    assert secret["secretName"] == hv["medai_harbor_secret_names"]["redis"]
    assert [it["path"] for it in secret["items"] if it["key"] == "requirepass.conf"] == [include.rsplit("/", 1)[1]]
    assert conf.rstrip().endswith(f"include {include}")  # last: nothing after it can unset the password
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["storageClassName"] == hv["medai_harbor_storage_class"]
    assert objs["Service"]["spec"]["ports"] == [{"name": "redis", "port": 6379, "targetPort": "redis", "protocol": "TCP"}]


def test_the_redis_image_is_the_one_harbors_chart_names_so_the_bundle_carries_it(site):
    r, _, _ = site
    with tarfile.open(FIXTURES / "harbor-1.17.0.tgz") as t:
        internal = yaml.safe_load(t.extractfile("harbor/values.yaml"))["redis"]["internal"]["image"]
    (c,) = _redis_objects(r)["StatefulSet"]["spec"]["template"]["spec"]["containers"]
    assert c["image"] == f"{internal['repository']}:{internal['tag']}"
    assert f"docker.io/{c['image']}" in r.site.plan.needed  # gated: fixture_render refuses an image not carried


def test_only_harbors_own_redis_clients_reach_redis(site):
    r, _, _ = site
    objs = [o for _, o in _objects(r)]
    policies = NetworkPolicies([o for o in objs if o["kind"] == "NetworkPolicy"],
                               {o["metadata"]["name"]: o["metadata"].get("labels") or {}
                                for o in objs if o["kind"] == "Namespace"})
    sts = _redis_objects(r)["StatefulSet"]["spec"]["template"]
    redis = Endpoint.pod("harbor", sts["metadata"]["labels"], None, sts["spec"]["containers"])
    harbor = next(rel for rel in r.site.releases if rel.name == "harbor")
    pods = {o["metadata"]["name"]: o["spec"]["template"] for o in harbor.objects if o["kind"] in PODS}

    def reaches(name: str, namespace: str = "harbor") -> bool:
        t = pods[name]
        return policies.allowed(Endpoint.pod(namespace, t["metadata"]["labels"], None, t["spec"]["containers"]),
                                redis, 6379, "TCP")

    assert {w for w, _ in CLIENTS} == {"harbor-core", "harbor-jobservice", "harbor-registry", "harbor-trivy"}
    assert all(reaches(w) for w, _ in CLIENTS)
    assert not reaches("harbor-portal") and not reaches("harbor-nginx") and not reaches("harbor-core", "keycloak")
