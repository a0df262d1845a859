"""K3s server configuration trees for the K3s CIS checks: one compliant with the K3s hardening guide, one not.

Written as files only: K3s itself is not installed or running anywhere in these tests.
"""
from __future__ import annotations

COMPLIANT_CONFIG = """\
# /etc/rancher/k3s/config.yaml as the K3s CIS hardening guide configures a server
protect-kernel-defaults: true
secrets-encryption: true
write-kubeconfig-mode: "0600"
kube-apiserver-arg:
  - "enable-admission-plugins=NodeRestriction,EventRateLimit"
  - 'admission-control-config-file=/var/lib/rancher/k3s/server/psa.yaml'
  - 'audit-log-path=/var/lib/rancher/k3s/server/logs/audit.log'
  - 'audit-policy-file=/var/lib/rancher/k3s/server/audit.yaml'
  - 'audit-log-maxage=30'
  - 'audit-log-maxbackup=10'
  - 'audit-log-maxsize=100'
  - "anonymous-auth=false"
kubelet-arg:
  - 'streaming-connection-idle-timeout=5m'
"""

NONCOMPLIANT_CONFIG = """\
secrets-encryption: false
kube-apiserver-arg:
  - "anonymous-auth=true"
  - "audit-log-maxage=7"
"""

PSA = """\
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: PodSecurity
  configuration:
    apiVersion: pod-security.admission.config.k8s.io/v1beta1
    kind: PodSecurityConfiguration
    defaults:
      enforce: "restricted"
      enforce-version: "latest"
    exemptions:
      namespaces: [kube-system, cis-operator-system]
"""

AUDIT = """\
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: Metadata
"""

KUBELET_SYSCTL = "vm.panic_on_oom=0\nvm.overcommit_memory=1\nkernel.panic=10\nkernel.panic_on_oops=1\n"


def shell_script(compliant: bool) -> str:
    """A POSIX sh script that writes the tree under / (run inside a lab node)."""
    tls = "/var/lib/rancher/k3s/server/tls"
    lines = ["set -e", f"mkdir -p /etc/rancher/k3s {tls}/etcd /var/lib/rancher/k3s/server/logs /etc/sysctl.d",
             f"rm -f /etc/rancher/k3s/config.yaml {tls}/*.crt {tls}/*.key {tls}/etcd/* /etc/sysctl.d/90-kubelet.conf"]

    def put(path: str, text: str, mode: str) -> None:
        lines.append(f"cat > {path} <<'MEDAI_EOF'\n{text}MEDAI_EOF")
        lines.append(f"chmod {mode} {path}")

    if compliant:
        put("/etc/rancher/k3s/config.yaml", COMPLIANT_CONFIG, "600")
        put("/var/lib/rancher/k3s/server/psa.yaml", PSA, "600")
        put("/var/lib/rancher/k3s/server/audit.yaml", AUDIT, "600")
        put("/etc/sysctl.d/90-kubelet.conf", KUBELET_SYSCTL, "644")
        put("/etc/rancher/k3s/k3s.yaml", "apiVersion: v1\nkind: Config\n", "600")
        for name in ("server-ca", "client-admin", "etcd/server-client"):
            put(f"{tls}/{name}.crt", "CERT\n", "600")
            put(f"{tls}/{name}.key", "KEY\n", "600")
    else:
        put("/etc/rancher/k3s/config.yaml", NONCOMPLIANT_CONFIG, "644")
        put("/etc/rancher/k3s/k3s.yaml", "apiVersion: v1\nkind: Config\n", "644")
        for name in ("server-ca", "client-admin"):
            put(f"{tls}/{name}.crt", "CERT\n", "644")
            put(f"{tls}/{name}.key", "KEY\n", "644")
        lines.append(f"chown 65534:65534 {tls}/client-admin.key")
    return "\n".join(lines) + "\n"
