"""The Pod Security evaluator against upstream's own generated cases (../shared/fixtures/pod-security: each
`fail/` case refused at its level, each `pass/` case admitted), on workload templates, and the level a namespace
enforces from the admission configuration roles/k3s writes."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from installer.render.errors import RenderError
from installer.render.podsecurity import (
    RESTRICTED,
    admission_defaults,
    evaluate,
    k3s_admission,
    least_level,
    namespace_level,
    pod_template,
)
from tests.support.fixture_charts import ROOT

CASES = Path("/work/shared/fixtures/pod-security")
if not CASES.is_dir():
    CASES = ROOT.parent / "shared" / "fixtures" / "pod-security"
FILES = sorted(CASES.glob("*/v1.34/*/*.yaml")) if CASES.is_dir() else []
needs_cases = pytest.mark.skipif(not FILES, reason=f"the upstream Pod Security cases ({CASES}) are absent")


def _id(p: Path) -> str:
    return "/".join(p.relative_to(CASES).with_suffix("").parts)


@needs_cases
def test_all_upstream_cases_are_here():
    assert len(FILES) == 144


@needs_cases
@pytest.mark.parametrize("case", FILES, ids=_id)
def test_upstream_case(case):
    level, _, verdict = case.relative_to(CASES).parts[:3]
    found = evaluate(yaml.safe_load(case.read_text()), level)
    if verdict == "pass":
        assert found == [], f"{_id(case)} must be admitted at {level}: {[str(v) for v in found]}"
    else:
        assert found, f"{_id(case)} must be refused at {level}"
        # the check upstream names the case after (or, at restricted, the restricted check replacing it) is found
        stem = case.stem.rstrip("0123456789").lower()
        named = {stem} | {r.lower() for r, (_, over) in RESTRICTED.items() if stem in {o.lower() for o in over}}
        assert named & {v.check.lower() for v in found}, [str(v) for v in found]


RESTRICTED_POD = {"securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                  "containers": [{"name": "app", "image": "x:1", "securityContext": {
                      "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}]}


def _deployment(spec: dict) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"template": {"metadata": {"labels": {"a": "b"}}, "spec": copy.deepcopy(spec)}}}


def test_a_workload_template_is_checked_with_its_field_path():
    d = _deployment(RESTRICTED_POD)
    assert evaluate(d, "restricted") == []
    d["spec"]["template"]["spec"]["hostNetwork"] = True
    d["spec"]["template"]["spec"]["volumes"] = [{"name": "h", "hostPath": {"path": "/"}}]
    found = evaluate(d, "restricted")
    assert {(v.check, v.path) for v in found} == {
        ("hostNamespaces", "spec.template.spec.hostNetwork"),
        ("restrictedVolumes", "spec.template.spec.volumes[0].hostPath")}
    assert {v.check for v in evaluate(d, "baseline")} == {"hostNamespaces", "hostPathVolumes"}
    assert evaluate(d, "privileged") == [] and least_level(d) == "privileged"


def test_a_cronjob_template_and_a_kind_without_pods():
    cj = {"kind": "CronJob", "metadata": {"name": "c"},
          "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [
              {"name": "c", "image": "x:1", "securityContext": {"privileged": True}}]}}}}}}
    assert [(v.check, v.path) for v in evaluate(cj, "baseline")] == [
        ("privileged", "spec.jobTemplate.spec.template.spec.containers[0].securityContext.privileged")]
    assert least_level(cj) == "privileged"
    assert pod_template({"kind": "ConfigMap"}) is None and evaluate({"kind": "Service"}, "restricted") == []


def test_an_unknown_level_is_refused():
    with pytest.raises(RenderError, match="'strict': not a Pod Security level"):
        evaluate(_deployment(RESTRICTED_POD), "strict")


def test_the_cluster_default_comes_from_the_admission_configuration_roles_k3s_writes():
    adm = k3s_admission()
    assert adm.enforce == "restricted" and adm.exempt_namespaces == {"kube-system"}
    assert namespace_level("metallb-system", {}, adm).level == "restricted"
    assert namespace_level("kube-system", {}, adm).why == "exempt"
    labelled = namespace_level("longhorn-system", {"pod-security.kubernetes.io/enforce": "privileged"}, adm)
    assert (labelled.level, labelled.why) == ("privileged", "label")
    site = k3s_admission({"medai_k3s_psa_enforce": "baseline", "medai_k3s_psa_exempt_namespaces": ["a", "b"]})
    assert site.enforce == "baseline" and site.exempt_namespaces == {"a", "b"}
    with pytest.raises(RenderError, match="label pod-security.kubernetes.io/enforce='nope'"):
        namespace_level("x", {"pod-security.kubernetes.io/enforce": "nope"}, adm)


def test_an_admission_configuration_without_pod_security_is_refused():
    with pytest.raises(RenderError, match="psa.yaml: plugins: no PodSecurity plugin"):
        admission_defaults("plugins: [{name: EventRateLimit, configuration: {}}]", "psa.yaml")
    with pytest.raises(RenderError, match="defaults.enforce: 'all'"):
        admission_defaults("plugins: [{name: PodSecurity, configuration: {defaults: {enforce: all}}}]", "psa.yaml")
