"""Image discovery: the demo chart rendered by the real helm, hooks included, every pod-template shape read."""
from __future__ import annotations

import pytest

from installer.bundle.discover import discover_images, images_in_document, normalize_ref, render_chart
from installer.bundle.manifest import Chart
from installer.errors import SourceError
from tests.support.sources import IMAGE_KEYS, make_chart


@pytest.fixture(scope="module")
def chart_archive(tmp_path_factory):
    return make_chart(tmp_path_factory.mktemp("chart"))


def test_every_workload_kind_is_found(chart_archive):
    images = {k: f"reg.example:5000/kinds/{k}:1" for k in IMAGE_KEYS}
    chart = Chart(name="demo", version="1.0.0", repo="https://unused.example", values={"images": images})
    docs = render_chart(chart, chart_archive)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod", "Worker"} <= kinds
    found = discover_images({"demo": docs})
    # one distinct image per place: Deployment container + initContainer, StatefulSet, DaemonSet, the hook Job,
    # CronJob's jobTemplate, bare Pod and the unknown kind carrying spec.template.spec
    assert set(found) == set(images.values())
    assert all(v == ["demo"] for v in found.values())


def test_values_switch_templates_off(chart_archive):
    chart = Chart(name="demo", version="1.0.0", repo="https://unused.example", values={"debugPod": False})
    found = discover_images({"demo": render_chart(chart, chart_archive)})
    assert "example.invalid/demo/pod:1" not in found
    assert "example.invalid/demo/web:1" in found


def test_hook_job_is_rendered(chart_archive):
    chart = Chart(name="demo", version="1.0.0", repo="https://unused.example")
    hooks = [d for d in render_chart(chart, chart_archive) if d["kind"] == "Job"]
    assert hooks and hooks[0]["metadata"]["annotations"]["helm.sh/hook"] == "pre-install"


def test_two_charts_needing_one_image_are_both_recorded():
    pod = {"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}
    found = discover_images({"b": [pod], "a": [pod]})
    assert found == {"docker.io/library/busybox:1.36": ["a", "b"]}


def test_ephemeral_containers_and_lists():
    doc = {"kind": "List", "items": [
        {"kind": "Pod", "spec": {"containers": [{"name": "a", "image": "a:1"}],
                                 "ephemeralContainers": [{"name": "dbg", "image": "quay.io/x/dbg:2"}]}},
        {"kind": "ConfigMap", "data": {"image": "not-an-image:1"}},
        {"kind": "ReplicaSet", "spec": {"template": {"spec": {"containers": [{"name": "r", "image": "r:3"}]}}}},
    ]}
    assert images_in_document(doc) == {"a:1", "quay.io/x/dbg:2", "r:3"}


def test_a_broken_image_reference_names_chart_and_object():
    pod = {"kind": "Deployment", "metadata": {"name": "web"},
           "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "Bad/UPPER:1"}]}}}}
    with pytest.raises(SourceError, match=r"chart demo: image 'Bad/UPPER:1' in Deployment web"):
        discover_images({"demo": [pod]})


def test_render_failure_is_one_line(chart_archive):
    chart = Chart(name="demo", version="1.0.0", repo="https://unused.example", values={"images": "not-a-map"})
    with pytest.raises(SourceError) as e:
        render_chart(chart, chart_archive)
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
