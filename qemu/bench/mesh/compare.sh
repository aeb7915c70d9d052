#!/usr/bin/env bash
# The mesh benchmark: vdcnet against the Linux router VM, in one run on one machine.
# Runs pair.sh for vdcnet, for Linux (-cpu max, where the kernel picks its AVX2 crypto,
# which TCG emulates slowly), for Linux without AVX (its faster configuration under
# TCG), then vdcnet again, and prints each figure with the ratio of vdcnet (mean of its two
# runs) to the better Linux configuration.
#
# Usage: sudo qemu/bench/mesh/compare.sh        (about 2.5 min; more the first time)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(mktemp -d "${TMPDIR:-/tmp}/mesh-compare.XXXXXX")"
trap 'rm -rf "$out"' EXIT

run() { # name, env assignments...
    local name="$1"
    shift
    echo "mesh/compare: $name" >&2
    env "$@" "$here/pair.sh" >"$out/$name.txt" 2>"$out/$name.err" || {
        cat "$out/$name.err" >&2
        echo "mesh/compare: $name failed" >&2
        exit 1
    }
}
get() { sed -n "s/^$2=//p" "$out/$1.txt"; }

run vdcnet-1 LR_ROUTER=vdcnet
run linux-avx LR_ROUTER=linux LR_CPU=max
run linux-noavx LR_ROUTER=linux LR_CPU=max,-avx2,-avx
run vdcnet-2 LR_ROUTER=vdcnet

mean() { echo "($1 + $2) / 2" | bc -l; }
best() { # higher-is-better pick of two Linux figures: name of the better run
    if [ "$(echo "$(get linux-avx "$1") >= $(get linux-noavx "$1")" | bc -l)" = 1 ]; then
        echo linux-avx
    else
        echo linux-noavx
    fi
}
best_low() { # lower-is-better
    if [ "$(echo "$(get linux-avx "$1") <= $(get linux-noavx "$1")" | bc -l)" = 1 ]; then
        echo linux-avx
    else
        echo linux-noavx
    fi
}

printf '\n%-28s %12s %12s %12s %12s %s\n' figure vdcnet-1 vdcnet-2 linux-avx linux-noavx "vdcnet vs best Linux"
for key in lr_tcp_w1_to_w2_mbps lr_tcp_w2_to_w1_mbps; do
    v="$(mean "$(get vdcnet-1 $key)" "$(get vdcnet-2 $key)")"
    b="$(best $key)"
    ratio="$(echo "$v / $(get "$b" $key)" | bc -l)"
    printf '%-28s %12s %12s %12s %12s %.2fx the throughput of %s\n' "${key#lr_}" \
        "$(get vdcnet-1 $key)" "$(get vdcnet-2 $key)" "$(get linux-avx $key)" "$(get linux-noavx $key)" "$ratio" "$b"
done
for key in lr_ping_avg_ms lr_ready_r1_s; do
    v="$(mean "$(get vdcnet-1 $key)" "$(get vdcnet-2 $key)")"
    b="$(best_low $key)"
    ratio="$(echo "$(get "$b" $key) / $v" | bc -l)"
    printf '%-28s %12s %12s %12s %12s %.2fx faster than %s\n' "${key#lr_}" \
        "$(get vdcnet-1 $key)" "$(get vdcnet-2 $key)" "$(get linux-avx $key)" "$(get linux-noavx $key)" "$ratio" "$b"
done
echo
echo "kernel: $(get linux-avx lr_kernel); vdcnet image: $(get vdcnet-1 lr_kernel)"
