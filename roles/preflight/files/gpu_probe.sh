#!/bin/sh
# Read-only GPU probe for the preflight and gpu roles. One "key value" line per fact:
#   gpu-device <pci address>       an NVIDIA device (PCI vendor 0x10de)
#   driver-loaded <version>        the loaded kernel module (/proc/driver/nvidia/version)
#   driver-userspace <version>     the installed userspace driver (libnvidia-ml / nvidia-smi package)
#   module-for-kernel <yes|no>     an nvidia module exists for the running kernel
#   kernel <release>
# MEDAI_SYSROOT prefixes /sys, /proc, /lib/modules and the dpkg database (tests); MEDAI_KERNEL overrides uname -r.
R="${MEDAI_SYSROOT:-}"
K="${MEDAI_KERNEL:-$(uname -r)}"
echo "kernel $K"
for d in "$R"/sys/bus/pci/devices/*; do
  [ -r "$d/vendor" ] || continue
  [ "$(cat "$d/vendor")" = 0x10de ] || continue
  # display/3D controllers only (class 0x03xxxx), not the GPU's audio function
  case "$(cat "$d/class" 2>/dev/null)" in 0x03*) echo "gpu-device ${d##*/}" ;; esac
done
if [ -r "$R/proc/driver/nvidia/version" ]; then
  v=$(sed -n 's/.*Kernel Module[^0-9]*\([0-9][0-9.]*\).*/\1/p' "$R/proc/driver/nvidia/version" | head -n 1)
  echo "driver-loaded ${v:-unknown}"
fi
admin="$R/var/lib/dpkg"
if command -v dpkg-query >/dev/null 2>&1 && [ -d "$admin" ]; then
  for p in libnvidia-ml1 nvidia-utils-550-server nvidia-utils-535-server nvidia-smi; do
    v=$(dpkg-query --admindir="$admin" -W -f='${db:Status-Abbrev} ${Version}\n' "$p" 2>/dev/null | awk '$1 ~ /^ii/ {print $2}')
    if [ -n "$v" ]; then echo "driver-userspace $(printf '%s' "$v" | sed 's/^[0-9]*://; s/-.*//')"; break; fi
  done
fi
if [ -d "$R/lib/modules/$K" ] && find "$R/lib/modules/$K" -name 'nvidia.ko*' 2>/dev/null | grep -q .; then
  echo "module-for-kernel yes"
else
  echo "module-for-kernel no"
fi
