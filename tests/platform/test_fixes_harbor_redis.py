"""Why Harbor's Redis has no password (docs/harbor.md, "Redis"): the pinned chart, rendered with the site's values,
gives its internal Redis no password setting and its clients no credential; switched to an external Redis, the
password is read with Helm's `lookup` (no render without a cluster) or taken from the values, and then lands in
clear in ConfigMaps. What guards Redis instead: only Harbor's own clients may reach it."""
from __future__ import annotations

import copy

import pytest

from installer.platform.values import merge
from installer.render.errors import RenderError
from installer.render.helm import render_chart
from installer.render.netpol import Endpoint, NetworkPolicies
from tests.support.fixture_charts import ROOT, needs_fixtures
from tests.support.render_platform import fixture_render

pytestmark = needs_fixtures
EXAMPLE = ROOT / "inventories" / "example" / "site.yml"
URL_KEYS = ("_REDIS_URL_CORE", "_REDIS_URL_REG", "_REDIS_URL_HARBOR", "_REDIS_URL_CACHE_LAYER")


@pytest.fixture(scope="module")
def harbor():
    r = fixture_render(EXAMPLE)
    return r, next(rel for rel in r.site.releases if rel.name == "harbor")


def _external(rel, **external) -> list[dict]:
    values = merge(copy.deepcopy(rel.values), {"redis": {"type": "external", "external": {"addr": "redis.medai:6379",
                                                                                            **external}}})
    return render_chart(rel.chart.name, rel.chart.version, rel.archive, values, rel.namespace, None, rel.name)


def _core_urls(objects) -> dict[str, str]:
    core = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-core"))
    return {k: core["data"][k] for k in URL_KEYS if k in core["data"]}


def test_the_internal_redis_takes_no_password_and_its_clients_send_none(harbor):
    _, rel = harbor
    assert rel.values["redis"].get("type", "internal") == "internal"
    (sts,) = [o for o in rel.objects if o["kind"] == "StatefulSet" and o["metadata"]["name"].endswith("-redis")]
    (c,) = sts["spec"]["template"]["spec"]["containers"]
    assert "args" not in c and "command" not in c  # redis-photon's own redis.conf: no requirepass
    urls = _core_urls(rel.objects)
    assert urls and all(u.startswith("redis://harbor-redis:6379/") for u in urls.values()), urls


def test_an_external_redis_password_is_looked_up_at_install_or_lands_in_configmaps(harbor):
    _, rel = harbor
    # Helm's lookup finds no Secret without a cluster, and the chart's template fails on it: no render, no gate
    with pytest.raises(RenderError, match="chart harbor 1.17.0: cannot render"):
        _external(rel, existingSecret="harbor-redis")
    inline = _external(rel, password="not-a-real-password")
    assert not any(o["kind"] == "StatefulSet" and o["metadata"]["name"].endswith("-redis") for o in inline)
    assert all(u.startswith("redis://:not-a-real-password@redis.medai:6379/") for u in _core_urls(inline).values())
    leaked = [o["metadata"]["name"] for o in inline if o["kind"] == "ConfigMap"
              and any("not-a-real-password" in str(v) for v in (o.get("data") or {}).values())]
    assert len(leaked) >= 2, leaked  # core and jobservice at least: the password in clear in ConfigMaps


def test_only_harbors_own_clients_reach_redis(harbor):
    r, rel = harbor
    objs = [o for x in r.site.releases for o in x.objects + x.site_objects]
    policies = NetworkPolicies([o for o in objs if o["kind"] == "NetworkPolicy"],
                               {o["metadata"]["name"]: o["metadata"].get("labels") or {}
                                for o in objs if o["kind"] == "Namespace"})
    redis = Endpoint.pod("harbor", {"app": "harbor", "component": "redis"}, None, [])

    def reaches(namespace: str, component: str) -> bool:
        return policies.allowed(Endpoint.pod(namespace, {"app": "harbor", "component": component}, None, []), redis,
                                6379, "TCP")

    assert all(reaches("harbor", c) for c in ("core", "jobservice", "registry", "trivy"))
    assert not reaches("harbor", "portal") and not reaches("harbor", "nginx") and not reaches("keycloak", "core")
