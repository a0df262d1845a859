"""Strict validation: every object the real charts render, at the bundled Kubernetes version, against
kubernetes-validate's strict schemas or the CRDs the charts ship; and the refusals, each naming release, kind,
name and field."""
from __future__ import annotations

import copy

import pytest

from installer.render.errors import RenderError
from installer.render.validate import crd_schemas, schema_version, validate_object, validate_release
from tests.support.fixture_charts import needs_fixtures, platform, rendered

pytestmark = needs_fixtures
KUBE = "1.34.2"


@pytest.fixture(scope="module")
def all_rendered():
    return {c.name: list(rendered(c.name)) for c in platform().spec.charts}


@pytest.fixture(scope="module")
def crds(all_rendered):
    return crd_schemas(d for docs in all_rendered.values() for d in docs)


def test_schema_version_is_the_bundled_minor():
    assert schema_version(KUBE) == "1.34.0"


def test_every_object_of_every_platform_chart_validates(all_rendered, crds):
    totals = {name: validate_release(name, docs, KUBE, crds) for name, docs in all_rendered.items()}
    assert all(sum(c.values()) == len(all_rendered[n]) for n, c in totals.items())
    assert totals["longhorn"]["core"] > 20 and totals["cilium"]["core"] > 10


def _pool(addresses):
    return {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": "site", "namespace": "metallb-system"}, "spec": {"addresses": addresses}}


def test_a_cr_is_checked_against_its_crd(crds):
    assert validate_object("metallb", _pool(["192.168.10.240-192.168.10.250"]), KUBE, crds) == "crd"


def test_a_cr_violating_its_crd_schema_names_release_kind_name_field(crds):
    with pytest.raises(RenderError, match=r"release metallb, IPAddressPool site: spec.addresses: "
                                          r"'192.168.10.0/24' is not of type 'array' \(schema of CRD IPAddressPool"):
        validate_object("metallb", _pool("192.168.10.0/24"), KUBE, crds)


def test_a_cr_with_an_unknown_field_is_refused(crds):
    pool = _pool(["10.0.0.1/32"])
    pool["spec"]["autoAsign"] = False  # typo of autoAssign: the API server would drop it silently
    with pytest.raises(RenderError, match=r"IPAddressPool site: spec: Additional properties are not allowed "
                                          r"\('autoAsign' was unexpected\)"):
        validate_object("metallb", pool, KUBE, crds)


def _deployment(all_rendered):
    return copy.deepcopy(next(d for d in all_rendered["metallb"] if d["kind"] == "Deployment"))


def test_a_core_object_with_a_wrong_type_is_refused(all_rendered, crds):
    d = _deployment(all_rendered)
    d["spec"]["replicas"] = "two"
    with pytest.raises(RenderError, match=r"release metallb, Deployment metallb-controller: spec.replicas: 'two' is "
                                          r"not of type 'integer'.*Kubernetes 1.34.0 schema"):
        validate_object("metallb", d, KUBE, crds)


def test_a_core_object_with_an_unknown_field_is_refused(all_rendered, crds):
    d = _deployment(all_rendered)
    d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(RenderError, match=r"spec.template.spec.containers\[0\]: Additional properties are not allowed"):
        validate_object("metallb", d, KUBE, crds)


def test_an_api_removed_before_the_bundled_version_is_refused(crds):
    cron = {"apiVersion": "batch/v1beta1", "kind": "CronJob", "metadata": {"name": "old"},
            "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}}}
    with pytest.raises(RenderError, match=r"release x, CronJob old: batch/v1beta1 CronJob is neither a Kubernetes "
                                          r"1.34.0 kind nor defined by a CRD"):
        validate_object("x", cron, KUBE, crds)


def test_a_kind_no_crd_defines_is_refused():
    with pytest.raises(RenderError, match="cilium.io/v2 CiliumNetworkPolicy is neither"):
        validate_object("cilium", {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
                                   "metadata": {"name": "p"}}, KUBE, {})
