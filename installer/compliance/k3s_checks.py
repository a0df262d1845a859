#!/usr/bin/env python3
"""K3s CIS checks (after the K3s CIS hardening guide and self-assessment), run ON a server node.

Copied to the node by roles/compliance (ansible.builtin.script) and run with the node's python3: standard library
only, because a minimal node has no PyYAML. It reads the configuration K3s would start with, not a running API:

  * /etc/rancher/k3s/config.yaml and config.yaml.d/*.yaml (flags: protect-kernel-defaults, secrets-encryption,
    kube-apiserver-arg audit-log-*, admission-control-config-file with a PodSecurity default, anonymous-auth);
  * modes and owners of the K3s config, kubeconfig and server TLS certificates and keys;
  * the kernel parameters protect-kernel-defaults requires, as persisted in /etc/sysctl.d and as live values.

Checks that need the Kubernetes API run only when the API answers on 127.0.0.1:6443; otherwise they report
"skipped: no API". Prints one JSON document on stdout; the exit code is 0 whatever the results are.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import socket
import stat
import subprocess
import sys

CONFIG = "etc/rancher/k3s/config.yaml"
CONFIG_D = "etc/rancher/k3s/config.yaml.d"
KUBECONFIG = "etc/rancher/k3s/k3s.yaml"
TLS_DIR = "var/lib/rancher/k3s/server/tls"
SYSCTL_DIRS = ("etc/sysctl.d", "usr/lib/sysctl.d", "run/sysctl.d")
# protect-kernel-defaults makes the kubelet refuse to start unless these are already set (K3s hardening guide).
KUBELET_SYSCTLS = {"vm.panic_on_oom": "0", "vm.overcommit_memory": "1", "kernel.panic": "10", "kernel.panic_on_oops": "1"}
PSA_ENFORCE = "pod-security.kubernetes.io/enforce"
PSA_LEVELS = ("privileged", "baseline", "restricted")  # the most permissive first
# The documented exceptions (docs/platform.md, "Pod Security levels"): the platform namespaces whose workloads need
# less than restricted, and the level each is labelled at. medai's render labels each namespace at the least level
# its pod templates need; tests/platform/test_fixes_podsecurity.py proves the render gives exactly these.
PSA_EXCEPTIONS = {
    "kube-system": "privileged",  # exempt in the admission configuration: Cilium, CoreDNS, K3s's own pods
    "metallb-system": "privileged",  # the speaker: host network, NET_RAW for ARP announcements
    "longhorn-system": "privileged",  # the manager and instance managers: privileged, host paths, iSCSI
    "nvidia-device-plugin": "privileged",  # the plugin, GFD and NFD read the host's devices and driver
}


# ---- a YAML subset: what a K3s config file is (scalars, block and flow lists of scalars) ----

def _scalar(text: str):
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    low = text.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    return text


def _strip_comment(line: str) -> str:
    quote = None
    for i, ch in enumerate(line):
        if ch in "'\"":
            quote = None if quote == ch else (quote or ch)
        elif ch == "#" and quote is None and (i == 0 or line[i - 1] in " \t"):
            return line[:i]
    return line


def parse_k3s_yaml(text: str, where: str) -> dict:
    out: dict = {}
    key = None
    for n, raw in enumerate(text.splitlines(), 1):
        line = _strip_comment(raw).rstrip()
        if not line.strip() or line.strip() == "---":
            continue
        stripped = line.strip()
        if stripped.startswith("- "):
            if key is None or not isinstance(out.get(key), list):
                raise ValueError(f"{where}:{n}: list item without a key")
            out[key].append(_scalar(stripped[2:]))
            continue
        m = re.match(r"^([A-Za-z0-9_.+-]+|\"[^\"]+\"|'[^']+')\s*:(?:\s+(.*))?$", stripped)
        if not m or line[0] in " \t":
            raise ValueError(f"{where}:{n}: not a 'key: value' line K3s accepts")
        key = str(_scalar(m.group(1)))
        value = (m.group(2) or "").strip()
        if not value:
            out[key] = []
        elif value.startswith("["):
            out[key] = [_scalar(v) for v in value.strip("[]").split(",") if v.strip()]
        else:
            out[key] = _scalar(value)
    return out


def load_config(root: str) -> tuple[dict, list[str], list[str]]:
    """Merged K3s config (config.yaml then config.yaml.d/*.yaml; 'key+' appends, as K3s does), files, errors."""
    files = [p for p in [os.path.join(root, CONFIG)] + sorted(glob.glob(os.path.join(root, CONFIG_D, "*.yaml"))) if os.path.isfile(p)]
    merged: dict = {}
    errors: list[str] = []
    for path in files:
        try:
            with open(path, encoding="utf-8") as f:
                doc = parse_k3s_yaml(f.read(), path)
        except (OSError, ValueError) as e:
            errors.append(str(e))
            continue
        for k, v in doc.items():
            if k.endswith("+"):
                base = k[:-1]
                cur = merged.get(base, [])
                merged[base] = (cur if isinstance(cur, list) else [cur]) + (v if isinstance(v, list) else [v])
            else:
                merged[k] = v
    return merged, files, errors


def args_of(cfg: dict, key: str) -> dict[str, str]:
    """kube-apiserver-arg style lists ('name=value') as a dict; the last occurrence wins, as on a command line."""
    raw = cfg.get(key, [])
    items = raw if isinstance(raw, list) else [raw]
    out: dict[str, str] = {}
    for item in items:
        name, _, value = str(item).lstrip("-").partition("=")
        out[name.strip()] = value.strip()
    return out


# ---- checks ----

def result(cid, title, cis, severity, ok, detail, fix, skipped=None):
    r = {"id": cid, "title": title, "cis": cis, "severity": severity, "detail": detail, "fix": fix}
    if skipped:
        r["result"], r["detail"] = "skipped", skipped
    else:
        r["result"] = "pass" if ok else "fail"
    return r


def _int(v, default=-1):
    try:
        return int(str(v).strip())
    except ValueError:
        return default


def config_checks(root: str, cfg: dict, have_config: bool) -> list[dict]:
    api = args_of(cfg, "kube-apiserver-arg")
    no_cfg = None if have_config else "skipped: no K3s config file on this host"
    checks = []
    v = cfg.get("protect-kernel-defaults", False)
    checks.append(result("k3s_4.2.6_protect_kernel_defaults", "Kubelet protects kernel defaults (protect-kernel-defaults: true)", "4.2.6", "medium",
                         v is True, f"protect-kernel-defaults: {v}", "set 'protect-kernel-defaults: true' in /etc/rancher/k3s/config.yaml", no_cfg))
    v = cfg.get("secrets-encryption", False)
    checks.append(result("k3s_1.2.29_secrets_encryption", "Secrets are encrypted at rest (secrets-encryption: true)", "1.2.29", "high",
                         v is True, f"secrets-encryption: {v}", "set 'secrets-encryption: true' in /etc/rancher/k3s/config.yaml", no_cfg))
    anon = api.get("anonymous-auth", "")
    checks.append(result("k3s_1.2.1_anonymous_auth", "API server rejects anonymous requests (anonymous-auth=false)", "1.2.1", "high",
                         anon.lower() != "true",
                         f"anonymous-auth={anon}" if anon else "anonymous-auth not set: K3s starts the API server with anonymous-auth=false",
                         "remove 'anonymous-auth=true' from kube-apiserver-arg (K3s defaults to false)", no_cfg))
    path = api.get("audit-log-path", "")
    checks.append(result("k3s_1.2.16_audit_log_path", "API server writes an audit log (audit-log-path)", "1.2.16", "medium",
                         bool(path), f"audit-log-path={path or '(not set)'}",
                         "add 'audit-log-path=/var/lib/rancher/k3s/server/logs/audit.log' to kube-apiserver-arg", no_cfg))
    for cid, name, minimum, cis in (("k3s_1.2.17_audit_log_maxage", "audit-log-maxage", 30, "1.2.17"),
                                    ("k3s_1.2.18_audit_log_maxbackup", "audit-log-maxbackup", 10, "1.2.18"),
                                    ("k3s_1.2.19_audit_log_maxsize", "audit-log-maxsize", 100, "1.2.19")):
        val = api.get(name, "")
        checks.append(result(cid, f"Audit log retention: {name} >= {minimum}", cis, "medium", _int(val) >= minimum,
                             f"{name}={val or '(not set)'}", f"add '{name}={minimum}' to kube-apiserver-arg", no_cfg))
    policy = api.get("audit-policy-file", "")
    pol_ok = bool(policy) and os.path.isfile(os.path.join(root, policy.lstrip("/")))
    checks.append(result("k3s_3.2.1_audit_policy", "An audit policy file is configured and present", "3.2.1", "medium", pol_ok,
                         f"audit-policy-file={policy or '(not set)'}" + ("" if pol_ok or not policy else " (file missing)"),
                         "write /var/lib/rancher/k3s/server/audit.yaml and add 'audit-policy-file=' to kube-apiserver-arg", no_cfg))
    checks.append(psa_check(root, api, no_cfg))
    return checks


def psa_check(root: str, api: dict, no_cfg) -> dict:
    path = api.get("admission-control-config-file", "")
    detail, ok = f"admission-control-config-file={path or '(not set)'}", False
    if path:
        full = os.path.join(root, path.lstrip("/"))
        try:
            with open(full, encoding="utf-8") as f:
                text = f.read()
            has_psa = re.search(r"name:\s*['\"]?PodSecurity['\"]?\s*$", text, re.M) is not None
            enforce = re.search(r"enforce:\s*['\"]?(\w+)", text)
            level = enforce.group(1) if enforce else ""
            ok = has_psa and level in ("baseline", "restricted")
            detail += f"; PodSecurity plugin {'configured' if has_psa else 'missing'}; default enforce level {level or '(none)'}"
        except OSError:
            detail += " (file missing)"
    return result("k3s_5.2_pod_security_admission", "Pod Security admission enforces baseline or restricted by default", "5.2.x", "high", ok, detail,
                  "point admission-control-config-file at a PodSecurity AdmissionConfiguration with enforce: baseline or restricted", no_cfg)


def _mode_owner(path: str):
    st = os.stat(path)
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


def permission_checks(root: str) -> list[dict]:
    checks = []
    for cid, rel, cis, title, sev in (("k3s_1.1.x_config_file_permissions", CONFIG, "1.1.x", "K3s config file is 0600 root:root", "medium"),
                                      ("k3s_1.1.13_admin_kubeconfig_permissions", KUBECONFIG, "1.1.13", "Admin kubeconfig (k3s.yaml) is 0600 root:root", "high")):
        full = os.path.join(root, rel)
        if not os.path.exists(full):
            checks.append(result(cid, title, cis, sev, False, "", "", skipped=f"skipped: /{rel} not present"))
            continue
        mode, uid, gid = _mode_owner(full)
        checks.append(result(cid, title, cis, sev, mode & 0o177 == 0 and uid == 0 and gid == 0,
                             f"/{rel} mode {mode:04o} owner {uid}:{gid}", f"chown root:root /{rel}; chmod 600 /{rel}"))
    tls = os.path.join(root, TLS_DIR)
    if not os.path.isdir(tls):
        for cid, cis, title in (("k3s_1.1.19_pki_ownership", "1.1.19", "K3s PKI directory and files are owned by root:root"),
                                ("k3s_1.1.20_pki_cert_permissions", "1.1.20", "K3s PKI certificates are 0600 or stricter"),
                                ("k3s_1.1.21_pki_key_permissions", "1.1.21", "K3s PKI keys are 0600 or stricter")):
            checks.append(result(cid, title, cis, "high", False, "", "", skipped=f"skipped: /{TLS_DIR} not present (K3s server not installed)"))
        return checks
    files = sorted(glob.glob(os.path.join(tls, "**", "*"), recursive=True))
    not_root = [f for f in [tls] + files if _mode_owner(f)[1:] != (0, 0)]
    checks.append(result("k3s_1.1.19_pki_ownership", "K3s PKI directory and files are owned by root:root", "1.1.19", "high", not not_root,
                         f"{len(not_root)} not owned by root:root" + (": " + ", ".join(os.path.relpath(f, root) for f in not_root[:5]) if not_root else ""),
                         f"chown -R root:root /{TLS_DIR}"))
    for cid, suffix, cis, title in (("k3s_1.1.20_pki_cert_permissions", ".crt", "1.1.20", "K3s PKI certificates are 0600 or stricter"),
                                    ("k3s_1.1.21_pki_key_permissions", ".key", "1.1.21", "K3s PKI keys are 0600 or stricter")):
        sel = [f for f in files if f.endswith(suffix) and os.path.isfile(f)]
        bad = [f for f in sel if _mode_owner(f)[0] & 0o177]
        detail = f"{len(sel)} {suffix} files, {len(bad)} too open" + (": " + ", ".join(f"{os.path.relpath(f, root)} {_mode_owner(f)[0]:04o}" for f in bad[:5]) if bad else "")
        checks.append(result(cid, title, cis, "high", bool(sel) and not bad, detail, f"chmod 600 /{TLS_DIR}/*{suffix} /{TLS_DIR}/**/*{suffix}"))
    return checks


def persisted_sysctls(root: str) -> dict[str, str]:
    """sysctl.d files in systemd-sysctl order: by file name across directories, /etc overriding same-named files."""
    by_name: dict[str, str] = {}
    for d in reversed(SYSCTL_DIRS):
        for p in glob.glob(os.path.join(root, d, "*.conf")):
            by_name[os.path.basename(p)] = p
    paths = [by_name[n] for n in sorted(by_name)]
    sysctl_conf = os.path.join(root, "etc/sysctl.conf")
    if os.path.isfile(sysctl_conf):
        paths.append(sysctl_conf)
    values: dict[str, str] = {}
    for p in paths:
        try:
            with open(p, encoding="utf-8") as f:
                for line in f:
                    line = line.strip()
                    if not line or line[0] in "#;" or "=" not in line:
                        continue
                    k, _, v = line.lstrip("-").partition("=")
                    values[k.strip().replace("/", ".")] = v.strip()
        except OSError:
            continue
    return values


def in_container() -> bool:
    return os.path.exists("/run/.containerenv") or os.path.exists("/.dockerenv") or os.environ.get("container") is not None


def sysctl_checks(root: str) -> list[dict]:
    persisted = persisted_sysctls(root)
    bad = {k: persisted.get(k, "(unset)") for k, v in KUBELET_SYSCTLS.items() if persisted.get(k) != v}
    want = ", ".join(f"{k}={v}" for k, v in KUBELET_SYSCTLS.items())
    checks = [result("k3s_4.2.6_kernel_parameters_persisted", "Kernel parameters protect-kernel-defaults needs are persisted in sysctl.d", "4.2.6", "medium",
                     not bad, "all set" if not bad else "wrong or unset: " + ", ".join(f"{k}={v}" for k, v in bad.items()),
                     f"write {want} to /etc/sysctl.d/90-kubelet.conf and run 'sysctl -p /etc/sysctl.d/90-kubelet.conf'")]
    why = None
    if root != "/":
        why = "skipped: checking a copy of a filesystem (--root), which has no live kernel"
    elif in_container():
        why = "skipped: running in a container, live kernel parameters belong to the host kernel"
    if why:
        checks.append(result("k3s_4.2.6_kernel_parameters_live", "Live kernel parameters match what protect-kernel-defaults needs", "4.2.6", "medium",
                             False, "", "", skipped=why))
        return checks
    live, wrong = {}, {}
    for k, v in KUBELET_SYSCTLS.items():
        try:
            with open(os.path.join("/proc/sys", *k.split(".")), encoding="utf-8") as f:
                live[k] = f.read().strip()
        except OSError:
            live[k] = "(unreadable)"
        if live[k] != v:
            wrong[k] = live[k]
    checks.append(result("k3s_4.2.6_kernel_parameters_live", "Live kernel parameters match what protect-kernel-defaults needs", "4.2.6", "medium",
                         not wrong, "all set" if not wrong else "live: " + ", ".join(f"{k}={v}" for k, v in wrong.items()), f"sysctl -w {want.replace(', ', ' ')}"))
    return checks


def api_running(host: str = "127.0.0.1", port: int = 6443) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def api_checks(root: str, running: bool) -> list[dict]:
    title = "No namespace enforces less than restricted Pod Security but the documented exceptions"
    if not running:
        return [result("k3s_5.2.x_namespace_psa_labels", title, "5.2.x", "medium", False, "", "", skipped="skipped: no API (K3s is not running on this host)")]
    kubeconfig = os.path.join(root, KUBECONFIG)
    try:
        out = subprocess.run(["k3s", "kubectl", "--kubeconfig", kubeconfig, "get", "namespaces", "-o", "json"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
        items = json.loads(out).get("items", [])
    except (OSError, subprocess.SubprocessError, ValueError) as e:
        return [result("k3s_5.2.x_namespace_psa_labels", title, "5.2.x", "medium", False, f"kubectl failed: {e}", "check the API server")]
    problems = psa_label_problems(items)
    return [result("k3s_5.2.x_namespace_psa_labels", title, "5.2.x", "medium", not problems,
                   "; ".join(problems) or f"exceptions: {', '.join(f'{k}={v}' for k, v in PSA_EXCEPTIONS.items())}",
                   "label the namespace pod-security.kubernetes.io/enforce=restricted")]


def psa_label_problems(items: list[dict]) -> list[str]:
    """Each namespace (as `kubectl get namespaces -o json` lists them) whose enforce label is more permissive than
    restricted and than its documented exception, or is no Pod Security level."""
    out = []
    for i in items:
        meta = i.get("metadata") or {}
        name, level = meta.get("name", "?"), (meta.get("labels") or {}).get(PSA_ENFORCE)
        if level is None:
            continue  # the admission configuration's default (restricted; k3s_5.2_pod_security_admission)
        if level not in PSA_LEVELS:
            out.append(f"{name}: {PSA_ENFORCE}={level!r} is not a Pod Security level")
            continue
        allowed = PSA_EXCEPTIONS.get(name, "restricted")
        if PSA_LEVELS.index(level) < PSA_LEVELS.index(allowed):
            out.append(f"{name}: enforces {level}, documented: {allowed}")
    return out


def run(root: str = "/") -> dict:
    cfg, files, errors = load_config(root)
    checks = []
    if errors:
        checks.append(result("k3s_config_parse", "K3s config files parse", "-", "high", False, "; ".join(errors), "fix the YAML"))
    checks += config_checks(root, cfg, bool(files) and not errors)
    checks += permission_checks(root)
    checks += sysctl_checks(root)
    running = api_running()
    checks += api_checks(root, running)
    return {"kind": "K3sChecks", "host": socket.gethostname(), "root": root, "configFiles": files, "apiRunning": running, "checks": checks}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="/", help="filesystem root to inspect (tests point this at a copy)")
    a = ap.parse_args(argv)
    json.dump(run(a.root), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
