"""K3s CIS configuration checks. K3s is NOT installed or running in any of these tests: the checker reads the
configuration files a K3s server would start with, written by the test; API checks report "skipped: no API"."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from installer.compliance import k3s_checks
from installer.lab.podman import podman
from tests.compliance.conftest import sh
from tests.support.k3s_fixtures import shell_script

CHECKER = Path(k3s_checks.__file__)


def results(doc: dict) -> dict[str, str]:
    return {c["id"]: c["result"] for c in doc["checks"]}


def write_tree(root: Path, compliant: bool) -> None:
    script = shell_script(compliant).replace(" /", f" {root}/").replace(">/", f">{root}/")
    subprocess.run(["sh", "-c", script], check=True)


def test_yaml_subset_parser_reads_k3s_config_forms():
    cfg = k3s_checks.parse_k3s_yaml(
        "a: true\nb: 'x y'  # comment\nc:\n  - \"p=1\"\n  - q=2\nd: [e, 'f']\nkube-apiserver-arg+: [x=1]\n", "t")
    assert cfg == {"a": True, "b": "x y", "c": ["p=1", "q=2"], "d": ["e", "f"], "kube-apiserver-arg+": ["x=1"]}
    with pytest.raises(ValueError, match="t:1: not a 'key: value' line"):
        k3s_checks.parse_k3s_yaml("just text\n", "t")


def test_dropins_append_with_plus_and_override_scalars(tmp_path):
    (tmp_path / "etc/rancher/k3s/config.yaml.d").mkdir(parents=True)
    (tmp_path / "etc/rancher/k3s/config.yaml").write_text("secrets-encryption: false\nkube-apiserver-arg:\n  - audit-log-maxage=30\n")
    (tmp_path / "etc/rancher/k3s/config.yaml.d/50-cis.yaml").write_text(
        "secrets-encryption: true\nkube-apiserver-arg+:\n  - audit-log-maxsize=100\n"
    )
    cfg, files, errors = k3s_checks.load_config(str(tmp_path))
    assert not errors and len(files) == 2
    assert cfg["secrets-encryption"] is True
    assert k3s_checks.args_of(cfg, "kube-apiserver-arg") == {"audit-log-maxage": "30", "audit-log-maxsize": "100"}


def test_compliant_tree_passes_k3s_not_running(tmp_path):
    write_tree(tmp_path, compliant=True)
    r = results(k3s_checks.run(str(tmp_path)))
    failing = {k: v for k, v in r.items() if v == "fail"}
    assert not failing, failing
    assert r["k3s_1.2.29_secrets_encryption"] == "pass" and r["k3s_1.1.21_pki_key_permissions"] == "pass"
    assert r["k3s_5.2_pod_security_admission"] == "pass" and r["k3s_4.2.6_kernel_parameters_persisted"] == "pass"
    assert r["k3s_5.2.x_namespace_psa_labels"] == "skipped"


def test_noncompliant_tree_fails_each_control_k3s_not_running(tmp_path):
    write_tree(tmp_path, compliant=False)
    doc = k3s_checks.run(str(tmp_path))
    r = results(doc)
    for cid in (
        "k3s_4.2.6_protect_kernel_defaults",
        "k3s_1.2.29_secrets_encryption",
        "k3s_1.2.1_anonymous_auth",
        "k3s_1.2.16_audit_log_path",
        "k3s_1.2.17_audit_log_maxage",
        "k3s_1.2.18_audit_log_maxbackup",
        "k3s_1.2.19_audit_log_maxsize",
        "k3s_3.2.1_audit_policy",
        "k3s_5.2_pod_security_admission",
        "k3s_1.1.x_config_file_permissions",
        "k3s_1.1.13_admin_kubeconfig_permissions",
        "k3s_1.1.19_pki_ownership",
        "k3s_1.1.20_pki_cert_permissions",
        "k3s_1.1.21_pki_key_permissions",
        "k3s_4.2.6_kernel_parameters_persisted",
    ):
        assert r[cid] == "fail", cid
    detail = {c["id"]: c["detail"] for c in doc["checks"]}
    assert "client-admin.key" in detail["k3s_1.1.19_pki_ownership"]
    assert detail["k3s_1.2.17_audit_log_maxage"] == "audit-log-maxage=7"


def test_no_k3s_on_host_means_skipped_not_passed(tmp_path):
    r = results(k3s_checks.run(str(tmp_path)))
    assert r["k3s_1.2.29_secrets_encryption"] == "skipped" and r["k3s_1.1.21_pki_key_permissions"] == "skipped"
    assert "pass" not in r.values()


@pytest.mark.lab
@pytest.mark.parametrize("compliant", [True, False], ids=["compliant", "noncompliant"])
def test_checker_on_a_lab_node_k3s_not_running(scan_node, compliant):
    """The script as Ansible runs it: copied to a node, run by the node's python3 (no PyYAML there)."""
    sh(scan_node, shell_script(compliant))
    podman("cp", str(CHECKER), f"{scan_node}:/var/lib/scan/k3s_checks.py")
    doc = json.loads(sh(scan_node, "python3 /var/lib/scan/k3s_checks.py").stdout)
    r = results(doc)
    assert doc["apiRunning"] is False and r["k3s_5.2.x_namespace_psa_labels"] == "skipped"
    # a container shares the host's kernel: live kernel parameters are not judged there
    assert r["k3s_4.2.6_kernel_parameters_live"] == "skipped"
    fails = sorted(k for k, v in r.items() if v == "fail")
    if compliant:
        assert fails == []
    else:
        assert len(fails) == 15 and "k3s_1.2.1_anonymous_auth" in fails


def _namespace(name: str, level: str | None = None) -> dict:
    labels = {"kubernetes.io/metadata.name": name} | ({k3s_checks.PSA_ENFORCE: level} if level else {})
    return {"metadata": {"name": name, "labels": labels}}


def test_pod_security_labels_accept_exactly_the_documented_exceptions():
    """The namespaces medai labels below restricted, each at the level documented in docs/platform.md."""
    assert k3s_checks.PSA_EXCEPTIONS == {"kube-system": "privileged", "metallb-system": "privileged",
                                         "longhorn-system": "privileged", "nvidia-device-plugin": "privileged"}
    cluster = [_namespace(n, lv) for n, lv in k3s_checks.PSA_EXCEPTIONS.items()]
    cluster += [_namespace(n, "restricted") for n in ("vault", "cnpg-system", "keycloak", "harbor", "medai-inference")]
    cluster += [_namespace("default"), _namespace("kube-public")]  # unlabelled: the admission default
    assert k3s_checks.psa_label_problems(cluster) == []


@pytest.mark.parametrize("name,level,problem", [
    ("harbor", "privileged", "harbor: enforces privileged, documented: restricted"),
    ("keycloak", "baseline", "keycloak: enforces baseline, documented: restricted"),
    ("default", "privileged", "default: enforces privileged, documented: restricted"),
    ("medai-inference", "privileged", "medai-inference: enforces privileged, documented: restricted"),
    ("vault", "open", "vault: pod-security.kubernetes.io/enforce='open' is not a Pod Security level"),
])
def test_pod_security_labels_fail_on_any_other(name, level, problem):
    cluster = [_namespace(n, lv) for n, lv in k3s_checks.PSA_EXCEPTIONS.items()] + [_namespace(name, level)]
    assert k3s_checks.psa_label_problems(cluster) == [problem]
