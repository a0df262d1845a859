"""Image discovery: the demo chart rendered by the real helm (hooks included, every pod-template shape), and
references found in every string of an object, each with its field path."""
from __future__ import annotations

import pytest

from installer.oci.refs import normalize_ref, refs_in_text
from installer.render.discover import find_images, findings_in_object
from installer.render.errors import ImageGateError, RenderError
from installer.render.helm import render_chart
from tests.support.sources import IMAGE_KEYS, make_chart


@pytest.fixture(scope="module")
def chart_archive(tmp_path_factory):
    return make_chart(tmp_path_factory.mktemp("chart"))


def _render(archive, values=None):
    return render_chart("demo", "1.0.0", archive, values or {}, "default", "1.34.2")


def _refs(docs, chart="demo"):
    return {f.ref.name for f in find_images({chart: docs})}


def test_every_workload_kind_is_found(chart_archive):
    images = {k: f"reg.example:5000/kinds/{k}:1" for k in IMAGE_KEYS}
    docs = _render(chart_archive, {"images": images})
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod", "Worker"} <= kinds
    assert _refs(docs) == set(images.values())


def test_values_switch_templates_off(chart_archive):
    found = _refs(_render(chart_archive, {"debugPod": False}))
    assert "example.invalid/demo/pod:1" not in found
    assert "example.invalid/demo/web:1" in found


def test_hook_job_is_rendered(chart_archive):
    hooks = [d for d in _render(chart_archive) if d["kind"] == "Job"]
    assert hooks and hooks[0]["metadata"]["annotations"]["helm.sh/hook"] == "pre-install"


def test_each_finding_names_chart_kind_object_and_field_path():
    pod = {"kind": "Deployment", "metadata": {"name": "web"},
           "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:1.36",
                                                          "env": [{"name": "SIDECAR", "value": "quay.io/x/side:2"}],
                                                          "args": ["--helper-image=ghcr.io/o/helper:3"]}]}}}}
    got = {(f.ref.name, f.path, f.how) for f in findings_in_object(pod, "demo")}
    assert got == {
        ("docker.io/library/busybox:1.36", "spec.template.spec.containers[0].image", "container"),
        ("quay.io/x/side:2", "spec.template.spec.containers[0].env[0].value", "text"),
        ("ghcr.io/o/helper:3", "spec.template.spec.containers[0].args[0]", "text"),
    }
    f = findings_in_object(pod, "demo")[1]
    assert f.where == "chart demo, Deployment web, spec.template.spec.containers[0].env[0].value"


def test_image_only_in_a_configmap_string():
    cm = {"kind": "ConfigMap", "metadata": {"name": "settings"},
          "data": {"config.yaml": "engine:\n  image: \"registry.example/eng/engine:v9\"\nport: 8080\n",
                   "endpoint": "localhost:8080", "cidr": "10.42.0.0/16", "url": "https://quay.io/x/y:1"}}
    found = findings_in_object(cm, "c")
    assert [(f.ref.name, f.path) for f in found] == [("registry.example/eng/engine:v9", "data.config.yaml")]


def test_image_only_in_a_custom_resource_field():
    cr = {"apiVersion": "ops.example/v1", "kind": "Engine", "metadata": {"name": "e1"},
          "spec": {"engineImage": "docker.io/longhornio/longhorn-engine:v1.9.1",
                   "sidecar": {"registry": "quay.io", "repository": "ops/side", "tag": "v2"},
                   "image": "nginx:1.27"}}
    got = {(f.ref.name, f.path) for f in findings_in_object(cr, "c")}
    assert got == {("docker.io/longhornio/longhorn-engine:v1.9.1", "spec.engineImage"),
                   ("quay.io/ops/side:v2", "spec.sidecar"),
                   ("docker.io/library/nginx:1.27", "spec.image")}


def test_crds_are_not_searched():
    crd = {"kind": "CustomResourceDefinition", "metadata": {"name": "x"},
           "spec": {"versions": [{"schema": {"description": "for example quay.io/org/app:v1"}}]}}
    assert findings_in_object(crd, "c") == []


def test_free_text_needs_a_repository_path_and_a_tag():
    assert refs_in_text("level:info nginx:1.2 org/app localhost:5000/x 127.0.0.1:6444") == []
    assert [r.name for r in refs_in_text("img=org/app:1, quay.io/a/b@sha256:" + "c" * 64)] == [
        "docker.io/org/app:1", "quay.io/a/b@sha256:" + "c" * 64]


def test_a_broken_container_image_names_chart_object_and_field():
    pod = {"kind": "Deployment", "metadata": {"name": "web"},
           "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "Bad/UPPER:1"}]}}}}
    with pytest.raises(ImageGateError, match=r"chart demo, Deployment web, spec.template.spec.containers\[0\].image: "
                                             r"'Bad/UPPER:1' is not an image reference"):
        find_images({"demo": [pod]})


def test_lists_are_walked():
    doc = {"kind": "List", "items": [
        {"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "a:1"}],
                                                             "ephemeralContainers": [{"name": "d", "image": "quay.io/x/dbg:2"}]}},
        {"kind": "ReplicaSet", "metadata": {"name": "r"}, "spec": {"template": {"spec": {"containers": [{"name": "r", "image": "r:3"}]}}}},
    ]}
    assert _refs([doc]) == {"docker.io/library/a:1", "quay.io/x/dbg:2", "docker.io/library/r:3"}


def test_render_failure_is_one_line(chart_archive):
    with pytest.raises(RenderError) as e:
        _render(chart_archive, {"images": "not-a-map"})
    assert str(e.value).startswith("chart demo 1.0.0: cannot render with its values:")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("given,full", [
    ("nginx", "docker.io/library/nginx:latest"),
    ("nginx:1.27", "docker.io/library/nginx:1.27"),
    ("org/app:2", "docker.io/org/app:2"),
    ("index.docker.io/org/app:2", "docker.io/org/app:2"),
    ("quay.io/cilium/cilium:v1.18.0@sha256:" + "a" * 64, "quay.io/cilium/cilium:v1.18.0@sha256:" + "a" * 64),
    ("localhost:5000/x@sha256:" + "b" * 64, "localhost:5000/x@sha256:" + "b" * 64),
    ("127.0.0.1:5000/demo/app:1.0", "127.0.0.1:5000/demo/app:1.0"),
])
def test_normalize_ref(given, full):
    assert normalize_ref(given) == full
