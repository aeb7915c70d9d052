#!/usr/bin/env bash
# Boot benchmark: builds the minimal PVH kernels (the floor under QEMU) and runs
# `cargo vdcnet bench` against them, which prints one table:
#   QEMU start -> `vdcnet: ready` (pc, microvm) vs QEMU start -> exit of a PVH kernel that
#   does nothing; image size; idle CPU over 10 s vs QEMU idling a halted kernel; the
#   smallest -m that boots and answers ping; q35 boot, echo and ping round trips.
# Usage: qemu/bench/boot.sh [--runs N]     (needs gcc and ld; root for the ping figures)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(mktemp -d "${TMPDIR:-/tmp}/vdcnet-bench.XXXXXX")"
trap 'rm -rf "$out"' EXIT

for variant in exit halt; do
    flags=()
    [ "$variant" = halt ] && flags=(-DHALT_FOREVER)
    gcc -m32 -c "${flags[@]}" -o "$out/minimal-$variant.o" "$here/minimal-pvh.S"
    ld -m elf_i386 -T "$here/minimal-pvh.ld" -o "$out/minimal-$variant.elf" "$out/minimal-$variant.o"
done

cd "$here/../.."
cargo vdcnet bench --baseline "$out/minimal-exit.elf" --idle-baseline "$out/minimal-halt.elf" "$@"
