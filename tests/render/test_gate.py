"""The completeness gate on the real upstream charts (platform.yaml's values, the bundled K3s version), and its
refusals."""
from __future__ import annotations

import pytest

from installer.bundle.manifest import Chart, Spec
from installer.oci.refs import normalize_ref, parse_ref
from installer.render.errors import ImageGateError
from installer.render.gate import CarriedImage, check_bundle_images, plan_images
from tests.support.fixture_charts import FIXTURES, needs_fixtures, platform, rendered

pytestmark = needs_fixtures


def _spec(*charts, images=()):
    return Spec(charts=list(charts), images=[{"ref": r} for r in images])


def _chart(name="c", **kw):
    return Chart(name=name, version="1.0.0", repo="https://unused.example", **kw)


def _pod(image, kind="Deployment", name="web", **container):
    return {"kind": kind, "metadata": {"name": name},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": image, **container}]}}}}


def test_bundled_k3s_version_drives_the_render():
    from installer.render.helm import k3s_kube_version
    assert k3s_kube_version(platform().spec) == "1.34.2"


def test_longhorn_every_image_the_chart_can_start():
    plan = plan_images(_spec(platform().spec.charts[2]), {"longhorn": list(rendered("longhorn"))})
    release_list = (FIXTURES / "longhorn-1.9.1-images.txt").read_text().split()
    # longhorn-cli is the release's CLI tool: nothing the chart deploys starts it (fixture README)
    expected = {normalize_ref(r) for r in release_list if "longhorn-cli" not in r}
    assert len(expected) == 13
    assert set(plan.needed) == expected
    kit = plan.why("longhornio/support-bundle-kit:v0.0.61")
    assert kit and kit[0].kind == "DaemonSet" and kit[0].name == "longhorn-manager" and kit[0].how == "text"
    assert {f.path for f in plan.why("docker.io/longhornio/csi-attacher:v4.9.0-20250709")} == {
        "spec.template.spec.containers[0].env[3].value"}


def test_longhorn_bundle_lacking_support_bundle_kit_is_refused_naming_it():
    plan = plan_images(_spec(platform().spec.charts[2]), {"longhorn": list(rendered("longhorn"))})
    carried = dict.fromkeys(plan.needed, CarriedImage("sha256:" + "0" * 64))
    check_bundle_images(plan, carried)
    del carried["docker.io/longhornio/support-bundle-kit:v0.0.61"]
    with pytest.raises(ImageGateError, match=r"image docker.io/longhornio/support-bundle-kit:v0.0.61 is not in the "
                                             r"bundle \(needed by chart longhorn, DaemonSet longhorn-manager, "
                                             r"spec.template.spec.containers\[0\].command\[\d+\]\)"):
        check_bundle_images(plan, carried)


def test_cilium_digest_pinned_references_are_kept_with_their_digest():
    plan = plan_images(_spec(platform().spec.charts[0]), {"cilium": list(rendered("cilium"))})
    names = {r.split("@")[0]: r for r in plan.needed}
    for repo in ("cilium", "operator-generic", "hubble-relay"):
        ref = names[f"quay.io/cilium/{repo}:v1.18.0"]
        assert "@sha256:" in ref
    assert any(r.startswith("quay.io/cilium/cilium-envoy:") and "@sha256:" in r for r in plan.needed)
    ref = names["quay.io/cilium/cilium:v1.18.0"]
    carried = {r: CarriedImage(parse_ref(r).digest) for r in plan.needed}
    check_bundle_images(plan, carried)
    carried[ref] = CarriedImage("sha256:" + "1" * 64)
    with pytest.raises(ImageGateError, match="carries digest sha256:1111.*not the pinned one"):
        check_bundle_images(plan, carried)


def test_nvidia_device_plugin_with_gfd_yields_node_feature_discovery():
    plan = plan_images(_spec(platform().spec.charts[6]), {"nvidia-device-plugin": list(rendered("nvidia-device-plugin"))})
    assert "registry.k8s.io/nfd/node-feature-discovery:v0.15.3" in plan.needed
    assert "nvcr.io/nvidia/k8s-device-plugin:v0.17.4" in plan.needed


def test_vault_agent_image_found_only_in_an_env_value():
    plan = plan_images(_spec(platform().spec.charts[3]), {"vault": list(rendered("vault"))})
    agent = [f for f in plan.why("hashicorp/vault:1.19.0") if f.kind == "Deployment"]
    assert agent and agent[0].path.startswith("spec.template.spec.containers[0].env[")


def test_metallb_l2_only_renders_no_frr():
    plan = plan_images(_spec(platform().spec.charts[1]), {"metallb": list(rendered("metallb"))})
    assert set(plan.needed) == {"quay.io/metallb/controller:v0.15.3", "quay.io/metallb/speaker:v0.15.3"}


# ----------------------------------------------------------------------------------------------- refusals


def test_latest_is_refused_naming_the_place():
    with pytest.raises(ImageGateError, match=r"chart c, Deployment web, spec.template.spec.containers\[0\].image: "
                                             r"image 'org/app:latest' uses the tag 'latest'"):
        plan_images(_spec(_chart()), {"c": [_pod("org/app:latest")]})


def test_untagged_is_refused():
    with pytest.raises(ImageGateError, match=r"Deployment web, .*image 'nginx' has no tag"):
        plan_images(_spec(_chart()), {"c": [_pod("nginx")]})


def test_unqualified_nginx_is_normalised():
    plan = plan_images(_spec(_chart()), {"c": [_pod("nginx:1.27")]})
    assert plan.needed == {"docker.io/library/nginx:1.27": ["c"]}


def test_latest_in_spec_images_is_refused():
    with pytest.raises(ImageGateError, match=r"spec.images\[0\].ref: image 'quay.io/a/b:latest' uses the tag 'latest'"):
        plan_images(_spec(images=["quay.io/a/b:latest"]), {})


def test_image_only_in_an_env_value_must_be_in_the_bundle():
    pod = _pod("quay.io/a/main:1", env=[{"name": "HELPER", "value": "quay.io/a/helper:2"}])
    plan = plan_images(_spec(_chart()), {"c": [pod]})
    with pytest.raises(ImageGateError, match=r"quay.io/a/helper:2 is not in the bundle \(needed by chart c, "
                                             r"Deployment web, spec.template.spec.containers\[0\].env\[0\].value\)"):
        check_bundle_images(plan, {"quay.io/a/main:1": CarriedImage("sha256:" + "a" * 64)})


def test_image_only_in_a_configmap_must_be_in_the_bundle():
    cm = {"kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"engine": "registry.example/e/engine:v9"}}
    plan = plan_images(_spec(_chart()), {"c": [cm]})
    with pytest.raises(ImageGateError, match=r"registry.example/e/engine:v9 is not in the bundle \(needed by chart c, "
                                             r"ConfigMap settings, data.engine\)"):
        check_bundle_images(plan, {})


def test_image_only_in_a_cr_field_is_needed():
    cr = {"apiVersion": "x.example/v1", "kind": "Engine", "metadata": {"name": "e"},
          "spec": {"engineImage": "docker.io/longhornio/longhorn-engine:v1.9.1"}}
    plan = plan_images(_spec(_chart()), {"c": [cr]})
    assert plan.needed == {"docker.io/longhornio/longhorn-engine:v1.9.1": ["c"]}
    assert plan.sources["docker.io/longhornio/longhorn-engine:v1.9.1"] == "chart c, Engine e, spec.engineImage"


def test_false_positive_waived_with_a_reason():
    cm = {"kind": "ConfigMap", "metadata": {"name": "docs"}, "data": {"readme": "see example.org/docs/page:3 for more"}}
    chart = _chart(ignoreImages=[{"ref": "example.org/docs/page:3", "reason": "a wiki page, not an image"}])
    plan = plan_images(_spec(chart), {"c": [cm]})
    assert plan.needed == {}
    assert plan.waived == {"example.org/docs/page:3": "a wiki page, not an image"}
    check_bundle_images(plan, {})


def test_a_waiver_also_covers_latest():
    chart = _chart(ignoreImages=[{"ref": "org/tool:latest", "reason": "only in a disabled debug hook"}])
    assert plan_images(_spec(chart), {"c": [_pod("org/tool:latest")]}).needed == {}


def test_a_waiver_that_matches_nothing_is_refused():
    chart = _chart(ignoreImages=[{"ref": "quay.io/gone/x:1", "reason": "stale"}])
    with pytest.raises(ImageGateError, match=r"spec.charts\[0\].ignoreImages\[0\].ref: quay.io/gone/x:1 is not in "
                                             r"chart c's rendered output"):
        plan_images(_spec(chart), {"c": [_pod("quay.io/a/b:1")]})


def test_a_waiver_needs_a_reason():
    with pytest.raises(Exception, match="reason"):
        _chart(ignoreImages=[{"ref": "quay.io/a/b:1"}])


def test_extra_images_are_added_and_may_not_repeat_what_discovery_finds():
    plan = plan_images(_spec(_chart(extraImages=["quay.io/a/runtime:1"])), {"c": [_pod("quay.io/a/b:1")]})
    assert plan.needed == {"quay.io/a/b:1": ["c"], "quay.io/a/runtime:1": ["c"]}
    with pytest.raises(ImageGateError, match=r"spec.charts\[0\].extraImages\[0\]: quay.io/a/b:1 is already found"):
        plan_images(_spec(_chart(extraImages=["quay.io/a/b:1"])), {"c": [_pod("quay.io/a/b:1")]})


# ------------------------------------------------------------------------------------- multi-arch images reduced

INDEX, AMD64 = "sha256:" + "1" * 64, "sha256:" + "2" * 64


def _reduced(complete: bool = False) -> dict[str, CarriedImage]:
    return {"quay.io/a/b:1": CarriedImage(INDEX, {"linux/amd64": AMD64}, reduced=not complete)}


def test_a_reference_to_a_carried_platform_manifest_passes_by_digest_and_tag_and_digest():
    for ref in (f"quay.io/a/b:1@{AMD64}", f"quay.io/a/b@{AMD64}"):
        check_bundle_images(plan_images(_spec(_chart()), {"c": [_pod(ref)]}), _reduced())


def test_a_reference_to_a_reduced_index_is_refused_naming_release_object_and_reference():
    plan = plan_images(_spec(_chart()), {"c": [_pod(f"quay.io/a/b:1@{INDEX}")]})
    with pytest.raises(ImageGateError) as e:
        check_bundle_images(plan, _reduced(), (), {"c": "rel"})
    assert str(e.value).startswith(f"release rel, Deployment web, spec.template.spec.containers[0].image: image "
                                   f"quay.io/a/b:1@{INDEX} pins the digest of a multi-arch index")
    assert f"(linux/amd64 {AMD64})" in str(e.value) and "\n" not in str(e.value)
    check_bundle_images(plan, _reduced(complete=True))  # an index carrying every platform is pushed as it is


def test_a_platform_manifest_of_another_tag_is_not_that_image():
    plan = plan_images(_spec(_chart()), {"c": [_pod(f"quay.io/a/b:2@{AMD64}")]})
    with pytest.raises(ImageGateError, match=r"image quay.io/a/b:2@sha256:2+ is not in the bundle"):
        check_bundle_images(plan, _reduced())
