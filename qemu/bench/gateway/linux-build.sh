#!/usr/bin/env bash
# Builds the HAProxy VM of the gateway benchmark with ../server-vm.sh: Debian's `haproxy`
# with ./linux-init as /init and ./haproxy.cfg. Prints the env file's path (GW_KVER=,
# GW_KERNEL=, GW_INITRD=, GW_HAPROXY=; sourced by compare.sh).
#
# Usage: qemu/bench/gateway/linux-build.sh       (root: apt-get, mknod)
# Env:   GW_CACHE (default <repo>/target/gateway-linux), and those of ../server-vm.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
SVM_NAME=gateway \
SVM_OUT="${GW_CACHE:-$repo/target/gateway-linux}" \
SVM_PACKAGE=haproxy SVM_BIN=/usr/sbin/haproxy \
SVM_VERSION_RE='s/^HAProxy version \([^ ]*\).*/\1/p' \
SVM_PREFIX=GW SVM_VERSION_VAR=GW_HAPROXY \
SVM_FILES="$here/linux-init:init:0755 $here/haproxy.cfg:etc/haproxy.cfg" \
    exec "$here/../server-vm.sh"
