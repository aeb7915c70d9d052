#!/usr/bin/env bash
# Mesh benchmark: two router VMs joined by a WireGuard tunnel, each with a workload network
# namespace on its segment, measured workload to workload. LR_ROUTER picks the routers:
# `linux` (Debian's cloud kernel with its WireGuard module, see linux-build.sh) or `vdcnet`
# (the appliance image, booted with the same QEMU command line but for -kernel/-initrd).
#
#   ns lr-w1 10.20.1.10/24                                         ns lr-w2 10.20.2.10/24
#      | tap lr-tap1                                                  | tap lr-tap2
#   [router 1: eth1 10.20.1.1/24, wg0] eth0 192.168.100.1/24 --UDP-- eth0 192.168.100.2/24 [router 2]
#                                       (QEMU -netdev socket,udp= on 127.0.0.1)
#
# Wireguard routes 10.20.1.0/24 <-> 10.20.2.0/24; keys come from `wg genkey` on the host.
# Measures from lr-w1 to 10.20.2.10: ping RTT (`ping -c 20 -i 0.2`), iperf3 TCP for 10 s
# each way (w1->w2, then -R), plus each VM's QEMU-start-to-ready time. Prints a table and
# `lr_*=value` lines. VMs, taps and namespaces are removed on exit.
#
# Usage: qemu/bench/mesh/pair.sh                   (root: taps, namespaces, apt-get)
# Env:   LR_ROUTER (linux|vdcnet)  VDCNET_IMAGE (the vdcnet ELF; default: cargo vdcnet build)
#        LR_MACHINE (pc)  LR_CPU (max)  LR_MEM (256)  LR_IPERF_SECS (10)  LR_PINGS (20)
#        LR_WAN (socket: the WAN NICs are a QEMU UDP socket pair on 127.0.0.1:BASE+1,
#        BASE+2 with LR_PORT_BASE (47100); bridge: taps lr-wan1/2 on a bridge in ns lr-wan)
#        LR_READY_TIMEOUT (180 s)  LR_KEEP=1 keeps the serial logs  LR_CACHE (see linux-build.sh)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
t_start="$(date +%s.%N)"

machine="${LR_MACHINE:-pc}"
cpu="${LR_CPU:-max}"
mem="${LR_MEM:-256}"
iperf_secs="${LR_IPERF_SECS:-10}"
pings="${LR_PINGS:-20}"
port_base="${LR_PORT_BASE:-47100}"
wan_mode="${LR_WAN:-socket}"
case "$wan_mode" in socket | bridge) ;; *) echo "LR_WAN must be socket or bridge" >&2; exit 1 ;; esac
ready_timeout="${LR_READY_TIMEOUT:-180}"

router="${LR_ROUTER:-linux}"
case "$router" in linux | vdcnet) ;; *) echo "LR_ROUTER must be linux or vdcnet" >&2; exit 1 ;; esac
die() { echo "mesh/pair ($router): $*" >&2; exit 1; }
say() { echo "mesh/pair ($router): $*" >&2; }
[ "$(id -u)" = 0 ] || die "needs root (taps, network namespaces)"

need_pkgs=()
command -v qemu-system-x86_64 >/dev/null || need_pkgs+=(qemu-system-x86)
command -v iperf3 >/dev/null || need_pkgs+=(iperf3)
command -v wg >/dev/null || need_pkgs+=(wireguard-tools)
command -v ping >/dev/null || need_pkgs+=(iputils-ping)
command -v ip >/dev/null || need_pkgs+=(iproute2)
command -v flock >/dev/null || need_pkgs+=(util-linux)
command -v bc >/dev/null || need_pkgs+=(bc)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
    say "installing ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${need_pkgs[@]}" >&2 || { apt-get update -q >&2 && apt-get install -y -q "${need_pkgs[@]}" >&2; }
fi

# One run at a time: the namespace and tap names are fixed.
exec 9>/run/lock/vdcnet-linux-router.lock
flock -n 9 || die "another run holds /run/lock/vdcnet-linux-router.lock"

if [ "$router" = linux ]; then
    envfile="$("$here/linux-build.sh")"
    # shellcheck disable=SC1090
    . "$envfile"
    ready_line='linux-router: ready'
    failed_line='linux-router: FAILED'
else
    image="${VDCNET_IMAGE:-}"
    if [ -z "$image" ]; then
        image="$(cd "$here/../../.." && cargo vdcnet build 2>/dev/null | tail -n 1)"
    fi
    [ -f "$image" ] || die "no vdcnet image (VDCNET_IMAGE or cargo vdcnet build)"
    LR_KERNEL="$image"
    LR_KVER="vdcnet $(stat -c %s "$image") bytes"
    ready_line='vdcnet: ready'
    failed_line='^config: \|vdcnet: fault\|vdcnet: fatal'
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/linux-router.XXXXXX")"
pids=()
cleanup() {
    set +e
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
    for i in 1 2; do
        ip netns del "lr-w$i" 2>/dev/null
        ip link del "lr-tap$i" 2>/dev/null
        ip link del "lr-wan$i" 2>/dev/null
    done
    ip netns del lr-wan 2>/dev/null
    if [ "${LR_KEEP:-0}" = 1 ]; then say "logs kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# Leftovers of an interrupted run (safe: we hold the lock).
for i in 1 2; do
    ip netns del "lr-w$i" 2>/dev/null || true
    ip link del "lr-tap$i" 2>/dev/null || true
    ip link del "lr-wan$i" 2>/dev/null || true
done
ip netns del lr-wan 2>/dev/null || true
if [ "$wan_mode" = bridge ]; then
    ip netns add lr-wan
    ip -n lr-wan link add lr-br0 type bridge
    ip -n lr-wan link set lr-br0 up
fi

now() { date +%s.%N; }
elapsed() { printf '%.2f' "$(echo "$(now) - $1" | bc -l)"; }

key1="$(wg genkey)"; pub1="$(wg pubkey <<<"$key1")"
key2="$(wg genkey)"; pub2="$(wg pubkey <<<"$key2")"

# boot_vm i wan-ip seg-cidr key peer-pub peer-wan-ip peer-seg-net
boot_vm() {
    local i="$1" other=$((3 - $1))
    ip netns add "lr-w$i"
    # The private key rides on the kernel command line (visible in ps): bench keys only.
    local wan_netdev="socket,id=wan,udp=127.0.0.1:$((port_base + other)),localaddr=127.0.0.1:$((port_base + i))"
    [ "$wan_mode" = socket ] || wan_netdev="tap,id=wan,ifname=lr-wan$i,script=no,downscript=no"
    local initrd append
    if [ "$router" = linux ]; then
        initrd="$LR_INITRD"
        append="console=ttyS0 quiet panic=-1 lr.wan=$2/24 lr.seg=$3 lr.key=$4 lr.peer=$5,$6:51820,$7"
    else
        # The same network as the Linux routers' command line, as a vdcnet node file.
        initrd="$work/node$i.conf"
        printf '[Link]\nAddress = %s/24\n[Link]\nRole = segment\nAddress = %s\n[Interface]\nPrivateKey = %s\n[Peer]\nPublicKey = %s\nEndpoint = %s:51820\nAllowedIPs = %s\n' \
            "$2" "$3" "$4" "$5" "$6" "$7" >"$initrd"
        append="vdcnet.stats=30"
    fi
    qemu-system-x86_64 -accel tcg -machine "$machine" -cpu "$cpu" -smp 1 -m "$mem" \
        -nodefaults -nographic -monitor none -no-reboot -serial "file:$work/r$i.log" \
        -kernel "$LR_KERNEL" -initrd "$initrd" -append "$append" \
        -netdev "$wan_netdev" \
        -device "virtio-net-pci,netdev=wan,addr=3,mac=52:54:00:4c:57:0$i,romfile=" \
        -netdev "tap,id=seg,ifname=lr-tap$i,script=no,downscript=no" \
        -device "virtio-net-pci,netdev=seg,addr=4,mac=52:54:00:4c:53:0$i,romfile=" \
        </dev/null >"$work/r$i.qemu.log" 2>&1 9>&- &
    pids+=($!)
    eval "t_boot$i=\$(now)"
    # QEMU creates the tap as it starts; once it exists, move it into the workload's
    # namespace (an attached tap keeps working there and vanishes when QEMU exits).
    local n=0
    until ip link show "lr-tap$i" >/dev/null 2>&1 && { [ "$wan_mode" = socket ] || ip link show "lr-wan$i" >/dev/null 2>&1; }; do
        n=$((n + 1))
        [ "$n" -le 200 ] && kill -0 "${pids[-1]}" 2>/dev/null || {
            cat "$work/r$i.qemu.log" >&2; die "QEMU for router $i did not create lr-tap$i"
        }
        sleep 0.05
    done
    ip link set "lr-tap$i" netns "lr-w$i"
    if [ "$wan_mode" = bridge ]; then
        ip link set "lr-wan$i" netns lr-wan
        ip -n lr-wan link set "lr-wan$i" master lr-br0 up
    fi
    ip -n "lr-w$i" link set lo up
    ip -n "lr-w$i" addr add "10.20.$i.10/24" dev "lr-tap$i"
    ip -n "lr-w$i" link set "lr-tap$i" up
    ip -n "lr-w$i" route add default via "10.20.$i.1"
}

say "booting two routers (kernel $LR_KVER, -machine $machine -cpu $cpu -m $mem, TCG)"
boot_vm 1 192.168.100.1 10.20.1.1/24 "$key1" "$pub2" 192.168.100.2 10.20.2.0/24
boot_vm 2 192.168.100.2 10.20.2.1/24 "$key2" "$pub1" 192.168.100.1 10.20.1.0/24

# Wait for both `linux-router: ready` lines.
ready1="" ready2=""
deadline=$(($(date +%s) + ready_timeout))
while [ -z "$ready1" ] || [ -z "$ready2" ]; do
    for i in 1 2; do
        eval "r=\$ready$i"
        [ -z "$r" ] || continue
        if grep -q "$failed_line" "$work/r$i.log" 2>/dev/null; then
            cat "$work/r$i.log" >&2; die "router $i failed"
        fi
        if grep -q "$ready_line" "$work/r$i.log" 2>/dev/null; then
            eval "ready$i=\$(elapsed \$t_boot$i)"
        elif ! kill -0 "${pids[i - 1]}" 2>/dev/null; then
            cat "$work/r$i.qemu.log" "$work/r$i.log" >&2; die "QEMU for router $i exited"
        fi
    done
    [ "$(date +%s)" -le "$deadline" ] || {
        tail -n 20 "$work/r1.log" "$work/r2.log" >&2; die "routers not ready after ${ready_timeout}s"
    }
    sleep 0.1
done
simd="$(sed -n 's/.*cpu simd: *//p' "$work/r1.log" | tr -d '\r' | head -n1 | sed 's/ *$//')"
[ "$router" = linux ] || simd="none (soft ChaCha20-Poly1305)"
say "ready: router 1 in ${ready1}s, router 2 in ${ready2}s (guest cpu simd: $simd)"

# First packet through the tunnel (includes the WireGuard handshake).
t0="$(now)"
n=0
until ip netns exec lr-w1 ping -q -c 1 -W 1 10.20.2.10 >/dev/null 2>&1; do
    n=$((n + 1))
    [ "$n" -lt 30 ] || { tail -n 20 "$work/r1.log" "$work/r2.log" >&2; die "no ping through the tunnel after 30 tries"; }
done
first="$(elapsed "$t0")"
say "tunnel up: first ping answered after ${first}s"

# Ping RTT.
pingout="$(ip netns exec lr-w1 ping -q -c "$pings" -i 0.2 10.20.2.10 || true)"
rtt="$(sed -n 's|.*= \([0-9.]*\)/\([0-9.]*\)/\([0-9.]*\)/\([0-9.]*\) ms.*|\1 \2 \3 \4|p' <<<"$pingout")"
read -r rtt_min rtt_avg rtt_max rtt_mdev <<<"${rtt:-- - - -}"
loss="$(sed -n 's/.* \([0-9.]*\)% packet loss.*/\1/p' <<<"$pingout")"

# iperf3 TCP, each way, against a server in lr-w2.
ip netns exec lr-w2 iperf3 -s -B 10.20.2.10 >"$work/iperf3-server.log" 2>&1 9>&- &
pids+=($!)
iperf() { # extra args -> "Mbit/s retransmits"
    local out i
    for i in 1 2 3 4 5 6 7 8 9 10; do
        out="$(ip netns exec lr-w1 iperf3 -c 10.20.2.10 -t "$iperf_secs" -f m "$@" 2>&1)" && break
        grep -q 'unable to connect\|Connection refused' <<<"$out" || break
        sleep 0.5
    done
    echo "$out" >>"$work/iperf3-client.log"
    local rx retr
    rx="$(awk '/receiver$/ { v = $(NF - 2) } END { print v }' <<<"$out")"
    retr="$(awk '/sender$/ { v = $(NF - 1) } END { print v }' <<<"$out")"
    [ -n "$rx" ] || { echo "$out" >&2; die "iperf3 $* failed"; }
    echo "$rx ${retr:--}"
}
say "iperf3 TCP ${iperf_secs}s w1 -> w2"
read -r tcp_fwd retr_fwd <<<"$(iperf)"
say "iperf3 TCP ${iperf_secs}s w2 -> w1 (-R)"
read -r tcp_rev retr_rev <<<"$(iperf -R)"

total="$(elapsed "$t_start")"
cat <<EOF

$router router VM pair ($LR_KVER, QEMU TCG -machine $machine -cpu $cpu -smp 1 -m $mem, WAN $wan_mode)
  workload 10.20.1.10 (ns lr-w1) -> WireGuard -> workload 10.20.2.10 (ns lr-w2)
  ----------------------------------------------------------------
  QEMU start -> ready, router 1      $ready1 s
  QEMU start -> ready, router 2      $ready2 s
  first ping through the tunnel      $first s
  ping RTT avg ($pings x 0.2 s)          $rtt_avg ms  (min $rtt_min, max $rtt_max, mdev $rtt_mdev, loss $loss%)
  iperf3 TCP w1 -> w2 (${iperf_secs} s)         $tcp_fwd Mbit/s  (retransmits $retr_fwd)
  iperf3 TCP w2 -> w1 (-R, ${iperf_secs} s)     $tcp_rev Mbit/s  (retransmits $retr_rev)
  guest cpu simd flags               $simd
  total run time                     $total s

lr_router=$router
lr_kernel=$LR_KVER
lr_machine=$machine
lr_wan=$wan_mode
lr_cpu=$cpu
lr_mem_mib=$mem
lr_ready_r1_s=$ready1
lr_ready_r2_s=$ready2
lr_first_ping_s=$first
lr_ping_avg_ms=$rtt_avg
lr_ping_min_ms=$rtt_min
lr_ping_max_ms=$rtt_max
lr_ping_loss_pct=$loss
lr_tcp_w1_to_w2_mbps=$tcp_fwd
lr_tcp_w2_to_w1_mbps=$tcp_rev
lr_tcp_w1_to_w2_retr=$retr_fwd
lr_tcp_w2_to_w1_retr=$retr_rev
lr_guest_simd=$(tr ' ' ',' <<<"$simd")
lr_total_s=$total
EOF
