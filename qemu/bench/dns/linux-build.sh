#!/usr/bin/env bash
# Builds the NSD VM of the DNS benchmark with ../server-vm.sh: Debian's `nsd` with
# ./linux-init as /init, ./nsd.conf and ./example.org.zone. Prints the env file's path
# (DNSB_KVER=, DNSB_KERNEL=, DNSB_INITRD=, DNSB_NSD=; sourced by compare.sh).
#
# Usage: qemu/bench/dns/linux-build.sh       (root: apt-get, mknod)
# Env:   DNSB_CACHE (default <repo>/target/dns-linux), and those of ../server-vm.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
SVM_NAME=dns \
SVM_OUT="${DNSB_CACHE:-$repo/target/dns-linux}" \
SVM_PACKAGE=nsd SVM_BIN=/usr/sbin/nsd \
SVM_VERSION_RE='s/^NSD version \([^ ]*\).*/\1/p' \
SVM_PREFIX=DNSB SVM_VERSION_VAR=DNSB_NSD \
SVM_FILES="$here/linux-init:init:0755 $here/nsd.conf:etc/nsd/nsd.conf $here/example.org.zone:etc/nsd/example.org.zone" \
SVM_DIRS="etc/nsd var/lib/nsd" \
    exec "$here/../server-vm.sh"
