#!/usr/bin/env bash
# The DNS benchmark: vdcnet's authoritative DNS against NSD in a Linux VM, in one run on
# one machine, with the same clients, the same zone and the same QEMU command line but
# for -kernel/-initrd/-append.
#
#   ns dnsb-client                       VM under test                  ns dnsb-backend
#   192.168.100.200/24 on br0 --tap-- eth0 192.168.100.1, .2   eth1 --tap-- br1 10.20.1.10/24
#   dnsperf, dnsprobe.py, dig           vdcnet gateway | NSD            (python http.server
#                                                                        :8080, the service's
#                                                                        backend)
#
# The zone (example.org.zone for NSD; the [DNS] section below for vdcnet): SOA, NS ns1/ns2
# with glue, www.example.org A 192.168.100.1 and 192.168.100.2 (TTL 30). vdcnet answers
# www with the addresses of the gateways serving it while its backend is up: here one
# gateway with both addresses on its underlay link, so the same two records.
#
# Figures (for vdcnet, NSD, vdcnet again):
#   udp_qps_qN       dnsperf -q N -l $DNSB_SECS -t 1, `www.example.org A` over UDP, for
#                    each N in $DNSB_WINDOWS (queries outstanding); lost queries too
#   cpu_pct_qN       the VM's QEMU process CPU (utime+stime) over that run, % of a core;
#                    qps_per_cpu_qN: queries answered in that run per second of that CPU
#   lat_p50/p99_ms   dnsprobe.py: one query at a time, $DNSB_RATE/s for $DNSB_PROBES
#                    queries, each answer checked (NOERROR, AA, exactly the two addresses)
#   ready_s          QEMU start -> the ready line; answer_s: -> the first right answer
# and, for vdcnet only (NSD has no counterpart): two gateways, each the other's
# [Gateway] Peer over a WireGuard tunnel, both with [DNS]; gateway 1's QEMU is killed
# (SIGKILL) and gateway 2 is asked `www.example.org A` every 20 ms (dnsprobe.py --watch;
# a dig loop forks too slowly to time this: about 200 ms per dig here) until an answer
# no longer lists 192.168.100.1 (gone_s, from the kill to that answer's arrival; then a
# `dig @192.168.100.2` must agree); then gateway 1 boots again and the watcher waits for
# it to be listed again (back_s, from QEMU start). $DNSB_DEATH_RUNS times, the kill at a
# random point of the 1 s status period.
#
# Usage: sudo qemu/bench/dns/compare.sh          (about 2.5 min; root: taps, namespaces)
# Env:   DNSB_SYSTEMS ("vdcnet nsd vdcnet")  DNSB_SECS (10)  DNSB_WINDOWS ("16 64")
#        DNSB_RATE (100)  DNSB_PROBES (1000)  DNSB_DEATH_RUNS (5; 0 skips it)
#        DNSB_MEM (256)  DNSB_CPU (max)  VDCNET_IMAGE (default: cargo vdcnet build)
#        DNSB_KEEP=1 (keep the logs)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"

systems="${DNSB_SYSTEMS:-vdcnet nsd vdcnet}"
secs="${DNSB_SECS:-10}"
windows="${DNSB_WINDOWS:-16 64}"
rate="${DNSB_RATE:-100}"
probes="${DNSB_PROBES:-1000}"
death_runs="${DNSB_DEATH_RUNS:-5}"
mem="${DNSB_MEM:-256}"
cpu="${DNSB_CPU:-max}"

GW1=192.168.100.1 GW2=192.168.100.2 CLIENT=192.168.100.200
NAME=www.example.org

say() { echo "dns/compare: $*" >&2; }
die() { say "$*"; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (taps, network namespaces)"

need_pkgs=()
command -v qemu-system-x86_64 >/dev/null || need_pkgs+=(qemu-system-x86)
command -v dnsperf >/dev/null || need_pkgs+=(dnsperf)
command -v dig >/dev/null || need_pkgs+=(bind9-dnsutils)
[ -x /usr/sbin/nsd ] || need_pkgs+=(nsd)
command -v wg >/dev/null || need_pkgs+=(wireguard-tools)
command -v python3 >/dev/null || need_pkgs+=(python3)
command -v bc >/dev/null || need_pkgs+=(bc)
command -v flock >/dev/null || need_pkgs+=(util-linux)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
    say "installing ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${need_pkgs[@]}" >&2 || { apt-get update -q >&2 && apt-get install -y -q "${need_pkgs[@]}" >&2; }
fi

exec 9>/run/lock/vdcnet-dnsbench.lock
flock -n 9 || die "another run holds /run/lock/vdcnet-dnsbench.lock"

image="${VDCNET_IMAGE:-}"
if [ -z "$image" ]; then
    say "building the image"
    image="$(cd "$repo" && cargo vdcnet build 2>/dev/null | tail -n 1)"
fi
[ -f "$image" ] || die "no vdcnet image (VDCNET_IMAGE or cargo vdcnet build)"
envfile="$("$here/linux-build.sh")"
# shellcheck disable=SC1090
. "$envfile"

work="$(mktemp -d "${TMPDIR:-/tmp}/dnsbench.XXXXXX")"
out="$work/figures" # key=value lines, one file for the whole run
: >"$out"
declare -A vm_pid=() # VM index -> QEMU pid
backend_pid=
cleanup() {
    set +e
    for pid in "${vm_pid[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${vm_pid[@]}"; do wait "$pid" 2>/dev/null; done
    [ -z "$backend_pid" ] || { kill "$backend_pid" 2>/dev/null; wait "$backend_pid" 2>/dev/null; }
    ip netns del dnsb-client 2>/dev/null
    ip netns del dnsb-backend 2>/dev/null
    if [ "${DNSB_KEEP:-0}" = 1 ]; then say "logs kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

now() { date +%s.%N; }
since() { printf '%.3f' "$(echo "$(now) - $1" | bc -l)"; }
put() { echo "$1=$2" >>"$out"; }
get() { sed -n "s/^$1=//p" "$out" | tail -n 1; }

# --- Namespaces with bridges, so the addresses (and the backend) outlive the VMs; each
# VM's taps join them. The backend namespace has one bridge per gateway (br1, br2): each
# appliance's segment is its own link, as in a deployment. (An earlier version put both
# gateways' segments on one bridge; in one of its death runs the survivor's health checks
# of its backend went unanswered for a minute after the other gateway's reboot: see the
# top README's "Measured" section.)
for ns in dnsb-client dnsb-backend; do
    ip netns del "$ns" 2>/dev/null || true
    ip netns add "$ns"
    ip -n "$ns" link set lo up
done
ip -n dnsb-client link add br0 type bridge
ip -n dnsb-client link set br0 up
ip -n dnsb-client addr add "$CLIENT/24" dev br0
for i in 1 2; do
    ip -n dnsb-backend link add "br$i" type bridge
    ip -n dnsb-backend link set "br$i" up
    ip -n dnsb-backend addr add "10.20.$i.10/24" dev "br$i"
done
client() { ip netns exec dnsb-client "$@"; }

# The backend of www.example.org (vdcnet lists itself only while a backend is up; its
# health check is a TCP connect). Both gateways of the death test use it, by their own
# segment's address.
mkdir -p "$work/www"
echo ok >"$work/www/index.html"
ip netns exec dnsb-backend python3 -m http.server 8080 --bind 0.0.0.0 --directory "$work/www" \
    </dev/null >"$work/backend.log" 2>&1 9>&- &
backend_pid=$!

dns_section() {
    cat <<EOF

[DNS]
Zone = example.org
NameServer = ns1.example.org, $GW1
NameServer = ns2.example.org, $GW2
Hostmaster = hostmaster.example.org
TTL = 30
RateLimit = 0
EOF
}
service_section() { # backend address
    printf '\n[Service]\nName = %s\nMode = http\nBackend = %s:8080\n' "$NAME" "$1"
}

# The single gateway of the throughput and latency figures: both addresses on its
# underlay link, both in Listen, so www answers with the same two A records as NSD's zone.
{
    printf '[Link]\nAddress = %s/24\nAddress = %s/24\n\n[Link]\nRole = segment\nAddress = 10.20.1.1/24\n' "$GW1" "$GW2"
    printf '\n[Gateway]\nListen = %s, %s\n' "$GW1" "$GW2"
    service_section 10.20.1.10
    dns_section
} >"$work/single.conf"

# boot I SYSTEM LOG: starts VM I (taps dnsb-pubI, dnsb-segI) and plugs them into the
# bridges. vdcnet boots NODEFILE=$node_file; nsd the NSD VM. Sets t_boot.
boot() {
    local i="$1" system="$2" log="$3" kernel initrd append
    if [ "$system" = vdcnet ]; then
        kernel="$image" initrd="$node_file" append="vdcnet.stats=1"
    else
        kernel="$DNSB_KERNEL" initrd="$DNSB_INITRD"
        append="console=ttyS0 quiet panic=-1 dns.addr=$GW1/24 dns.addr=$GW2/24 dns.private=10.20.1.1/24"
    fi
    ip link del "dnsb-pub$i" 2>/dev/null || true
    ip link del "dnsb-seg$i" 2>/dev/null || true
    ip -n dnsb-client link del "dnsb-pub$i" 2>/dev/null || true
    ip -n dnsb-backend link del "dnsb-seg$i" 2>/dev/null || true
    t_boot="$(now)"
    qemu-system-x86_64 -accel tcg -machine pc -cpu "$cpu" -smp 1 -m "$mem" \
        -nodefaults -nographic -monitor none -no-reboot -serial "file:$log" \
        -device isa-debug-exit,iobase=0xf4,iosize=4 \
        -kernel "$kernel" -initrd "$initrd" -append "$append" \
        -netdev "tap,id=pub,ifname=dnsb-pub$i,script=no,downscript=no" \
        -device "virtio-net-pci,netdev=pub,addr=3,mac=52:54:00:64:6e:0$i,romfile=" \
        -netdev "tap,id=seg,ifname=dnsb-seg$i,script=no,downscript=no" \
        -device "virtio-net-pci,netdev=seg,addr=4,mac=52:54:00:64:6e:1$i,romfile=" \
        </dev/null >"$log.qemu" 2>&1 9>&- &
    vm_pid[$i]=$!
    local n=0
    until ip link show "dnsb-pub$i" >/dev/null 2>&1 && ip link show "dnsb-seg$i" >/dev/null 2>&1; do
        n=$((n + 1))
        [ "$n" -le 200 ] && kill -0 "${vm_pid[$i]}" 2>/dev/null || { cat "$log.qemu" >&2; die "QEMU $i did not create its taps"; }
        sleep 0.05
    done
    ip link set "dnsb-pub$i" netns dnsb-client
    ip -n dnsb-client link set "dnsb-pub$i" master br0 up
    ip link set "dnsb-seg$i" netns dnsb-backend
    ip -n dnsb-backend link set "dnsb-seg$i" master "br$i" up
}
stop() { # I: SIGKILL, as a dead machine
    local pid="${vm_pid[$1]:-}"
    [ -n "$pid" ] || return 0
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    unset "vm_pid[$1]"
}
wait_line() { # I LOG PATTERN WHAT: until PATTERN is in LOG (90 s)
    local deadline=$(($(date +%s) + 90))
    until grep -q "$3" "$2" 2>/dev/null; do
        kill -0 "${vm_pid[$1]}" 2>/dev/null || { cat "$2.qemu" "$2" >&2; die "$4: QEMU exited"; }
        [ "$(date +%s)" -le "$deadline" ] || { tail -n 20 "$2" >&2; die "$4: no '$3' after 90 s"; }
        sleep 0.02
    done
}
# The A records of www.example.org at SERVER, sorted, comma-separated ("" if no answer).
ask() { client dig +short +time=1 +tries=1 "@$1" "$NAME" A 2>/dev/null | grep -E '^[0-9.]+$' | sort | paste -sd, || true; }
wait_answer() { # SERVER WANT WHAT: until ask gives WANT (90 s)
    local deadline=$(($(date +%s) + 90)) got
    until got="$(ask "$1")" && [ "$got" = "$2" ]; do
        [ "$(date +%s)" -le "$deadline" ] || die "$3: $1 still answers '$got' (want '$2') after 90 s"
        sleep 0.02
    done
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
dnsperf_field() { sed -n "s/^ *$1: *\([0-9.]*\).*/\1/p" "$2" | head -n1; }

echo "www.example.org A" >"$work/queries"
printf 'host: %s, load average %s\n' "$(nproc) cpus" "$(cut -d' ' -f1-3 /proc/loadavg)" >"$work/host"

run_system() { # RUN-NAME SYSTEM
    local name="$1" system="$2" log="$work/$1.log" ready_line
    if [ "$system" = vdcnet ]; then ready_line='vdcnet: ready'; node_file="$work/single.conf"; else ready_line='dns-linux: ready'; fi
    say "$name: booting ($system, -machine pc -cpu $cpu -smp 1 -m $mem, TCG)"
    boot 1 "$system" "$log"
    local t0="$t_boot"
    wait_line 1 "$log" "$ready_line" "$name"
    put "${name}_ready_s" "$(since "$t0")"
    wait_answer "$GW1" "$GW1,$GW2" "$name"
    put "${name}_answer_s" "$(since "$t0")"
    local pid="${vm_pid[1]}" w c0 c1 t1 el
    for w in $windows; do
        say "$name: dnsperf -q $w -l $secs"
        c0="$(cpu_ticks "$pid")"; t1="$(now)"
        client dnsperf -s "$GW1" -d "$work/queries" -l "$secs" -q "$w" -t 1 >"$work/$name.dnsperf-q$w" 2>&1 ||
            { cat "$work/$name.dnsperf-q$w" >&2; die "$name: dnsperf failed"; }
        c1="$(cpu_ticks "$pid")"; el="$(echo "$(now) - $t1" | bc -l)"
        put "${name}_udp_qps_q$w" "$(printf '%.0f' "$(dnsperf_field 'Queries per second' "$work/$name.dnsperf-q$w")")"
        put "${name}_udp_sent_q$w" "$(dnsperf_field 'Queries sent' "$work/$name.dnsperf-q$w")"
        put "${name}_udp_lost_q$w" "$(dnsperf_field 'Queries lost' "$work/$name.dnsperf-q$w")"
        put "${name}_udp_noerror_q$w" "$(sed -n 's/.*Response codes: *NOERROR \([0-9]*\).*/\1/p' "$work/$name.dnsperf-q$w")"
        put "${name}_udp_avg_ms_q$w" "$(printf '%.3f' "$(echo "1000 * $(dnsperf_field 'Average Latency (s)' "$work/$name.dnsperf-q$w")" | bc -l)")"
        local cpu_s
        cpu_s="$(echo "($c1 - $c0) / $(getconf CLK_TCK)" | bc -l)"
        put "${name}_cpu_pct_q$w" "$(printf '%.0f' "$(echo "$cpu_s / $el * 100" | bc -l)")"
        put "${name}_qps_per_cpu_q$w" "$(printf '%.0f' "$(echo "$(get "${name}_udp_noerror_q$w") / $cpu_s" | bc -l)")"
    done
    say "$name: dnsprobe.py, $probes queries at $rate/s"
    client python3 "$here/dnsprobe.py" "$GW1" "$NAME" "$GW1,$GW2" --rate "$rate" --count "$probes" >"$work/$name.probe"
    while IFS='=' read -r k v; do put "${name}_$k" "$v"; done <"$work/$name.probe"
    if [ "$system" = vdcnet ]; then
        sleep 1.2 # one more stats line, after the load
        put "${name}_stats" "$(grep 'vdcnet: stats' "$log" | tail -n 1 | grep -o ' dns udp=.*' | sed 's/^ //')"
        put "${name}_link0" "$(grep 'vdcnet: stats' "$log" | tail -n 1 | grep -o 'link0 [^;]*')"
    fi
    stop 1
    say "$name: $(get "${name}_udp_qps_q${windows%% *}") qps at -q ${windows%% *}, p50 $(get "${name}_probe_p50_ms") ms"
}

i=0
names=()
for s in $systems; do
    i=$((i + 1))
    case "$s" in vdcnet | nsd) ;; *) die "DNSB_SYSTEMS: vdcnet or nsd, not $s" ;; esac
    names+=("$s-$i")
    run_system "$s-$i" "$s"
done

# --- Two gateways: the death of one.
if [ "$death_runs" -gt 0 ]; then
    k1="$(wg genkey)"; p1="$(wg pubkey <<<"$k1")"
    k2="$(wg genkey)"; p2="$(wg pubkey <<<"$k2")"
    gw_file() { # I OWN-ADDR KEY PEER-PUB PEER-ADDR
        local i="$1" o=$((3 - $1))
        printf '[Link]\nAddress = %s/24\n\n[Link]\nRole = segment\nAddress = 10.20.%s.1/24\n' "$2" "$i"
        printf '\n[Interface]\nPrivateKey = %s\nListenPort = 51820\n' "$3"
        printf '\n[Peer]\nPublicKey = %s\nEndpoint = %s:51820\nAllowedIPs = 10.20.%s.0/24\n' "$4" "$5" "$o"
        printf '\n[Gateway]\nListen = %s\nPeer = 10.20.%s.1\n' "$2" "$o"
        service_section "10.20.$i.10"
        dns_section
    }
    gw_file 1 "$GW1" "$k1" "$p2" "$GW2" >"$work/gw1.conf"
    gw_file 2 "$GW2" "$k2" "$p1" "$GW1" >"$work/gw2.conf"
    say "death: booting two gateways"
    node_file="$work/gw2.conf" boot 2 vdcnet "$work/gw2.log"
    wait_line 2 "$work/gw2.log" 'vdcnet: ready' "gateway 2"
    node_file="$work/gw1.conf" boot 1 vdcnet "$work/gw1.log-0"
    wait_line 1 "$work/gw1.log-0" 'vdcnet: ready' "gateway 1"
    wait_answer "$GW2" "$GW1,$GW2" "gateway 2 listing both"
    wait_answer "$GW1" "$GW1,$GW2" "gateway 1 listing both"
    for r in $(seq 1 "$death_runs"); do
        sleep "0.$((RANDOM % 10))" # the kill falls anywhere in the 1 s status period
        t0="$(now)"
        stop 1
        client python3 "$here/dnsprobe.py" "$GW2" "$NAME" "$GW2" --watch --since "$t0" --old "$GW1,$GW2" \
            >"$work/death-gone-$r"
        gone="$(sed -n 's/^watch_s=//p' "$work/death-gone-$r")"
        [ "$gone" != - ] || die "death run $r: $GW2 still lists $GW1 after 60 s"
        put "death_gone_s_$r" "$gone"
        put "death_polls_$r" "$(sed -n 's/^watch_polls=//p' "$work/death-gone-$r")"
        sed -n 's/^watch_other_example=/  other answer: /p; s/^watch_timeouts=\([1-9]\)/  timeouts: \1/p' "$work/death-gone-$r" |
            sed "s/^/death run $r:/" >>"$work/death.odd"
        got="$(ask "$GW2")" # and dig agrees
        [ "$got" = "$GW2" ] || die "death run $r: the watcher saw $GW2 alone, dig then answered '$got'"
        node_file="$work/gw1.conf" boot 1 vdcnet "$work/gw1.log-$r"
        t0="$t_boot"
        client python3 "$here/dnsprobe.py" "$GW2" "$NAME" "$GW1,$GW2" --watch --since "$t0" --old "$GW2" \
            >"$work/death-back-$r"
        back="$(sed -n 's/^watch_s=//p' "$work/death-back-$r")"
        put "death_back_s_$r" "$back"
        if [ "$back" = - ] || [ "$(echo "$back > 5" | bc -l)" = 1 ]; then
            # Keep the evidence: what the survivor said of its backend and its peer meanwhile.
            sed -n 's/^watch_other_example=/  answered meanwhile: /p' "$work/death-back-$r" | sed "s/^/death run $r:/" >>"$work/death.odd"
            grep 'vdcnet: stats' "$work/gw2.log" | tail -n 8 | grep -o 'link1 rx=[0-9]* tx=[0-9]*\|be0=[^ ;]*\|peer=[^ ;]*' |
                paste -sd' ' | sed "s/^/death run $r: back after ${back}s; survivor's last 8 stats lines: /" >>"$work/death.odd"
        fi
        [ "$back" != - ] || die "death run $r: $GW2 does not list $GW1 again within 60 s of its boot"
        wait_answer "$GW1" "$GW1,$GW2" "death run $r: gateway 1 listing both"
        say "death run $r: gone from the survivor's answers after ${gone}s ($(get "death_polls_$r") polls), back $(get "death_back_s_$r")s after QEMU start"
    done
    sleep 1.2
    put death_stats_survivor "$(grep 'vdcnet: stats' "$work/gw2.log" | tail -n 1 | grep -o ' dns udp=.*' | sed 's/^ //')"
    put death_peer_survivor "$(grep 'vdcnet: stats' "$work/gw2.log" | tail -n 1 | grep -o ' peer=[^ ;]*' | sed 's/^ //' | paste -sd' ')"
    stop 1
    stop 2
fi

# --- The table.
mean_of() { # key suffix over the runs of SYSTEM
    local sys="$1" key="$2" sum=0 n=0 v
    for nm in "${names[@]}"; do
        [ "${nm%-*}" = "$sys" ] || continue
        v="$(get "${nm}_$key")"
        [ -n "$v" ] && [ "$v" != - ] || continue
        sum="$(echo "$sum + $v" | bc -l)"; n=$((n + 1))
    done
    [ "$n" -gt 0 ] && echo "$sum / $n" | bc -l || echo ""
}
ratio() { # KEY higher|lower
    local v n
    v="$(mean_of vdcnet "$1")"; n="$(mean_of nsd "$1")"
    [ -n "$v" ] && [ -n "$n" ] || { echo -; return; }
    if [ "$2" = higher ]; then
        printf '%.2fx' "$(echo "$v / $n" | bc -l)"
    else
        printf '%.2fx lower' "$(echo "$n / $v" | bc -l)"
    fi
}
{
    echo
    echo "DNS: vdcnet (image $(stat -c %s "$image") bytes) vs NSD $DNSB_NSD (Linux $DNSB_KVER), QEMU TCG -machine pc -cpu $cpu -smp 1 -m $mem; $(cat "$work/host")"
    echo "queries: '$NAME A' over UDP from ns dnsb-client; dnsperf -l $secs -t 1; dnsprobe.py at $rate/s x $probes"
    printf '%-24s' figure
    for nm in "${names[@]}"; do printf ' %12s' "$nm"; done
    printf ' %s\n' "vdcnet / NSD (vdcnet: mean of its runs)"
    row() { # KEY LABEL higher|lower|none
        printf '%-24s' "$2"
        for nm in "${names[@]}"; do printf ' %12s' "$(get "${nm}_$1")"; done
        if [ "$3" = none ]; then echo; else printf ' %s\n' "$(ratio "$1" "$3")"; fi
    }
    for w in $windows; do
        row "udp_qps_q$w" "UDP qps, -q $w" higher
        row "udp_lost_q$w" "  lost, -q $w" none
        row "udp_avg_ms_q$w" "  avg latency ms, -q $w" lower
        row "cpu_pct_q$w" "  VM CPU %, -q $w" none
        row "qps_per_cpu_q$w" "  queries/VM CPU-s, -q $w" higher
    done
    row probe_p50_ms "latency p50 ms, $rate/s" lower
    row probe_p99_ms "latency p99 ms, $rate/s" lower
    row probe_max_ms "latency max ms, $rate/s" lower
    row probe_timeouts "  timeouts" none
    row probe_wrong "  wrong answers" none
    row ready_s "QEMU start -> ready s" lower
    row answer_s "  -> first answer s" lower
    for nm in "${names[@]}"; do
        s="$(get "${nm}_stats")"
        [ -z "$s" ] || echo "$nm stats: $(get "${nm}_link0"); $s"
    done
    if [ "$death_runs" -gt 0 ]; then
        gones=() backs=()
        for r in $(seq 1 "$death_runs"); do gones+=("$(get "death_gone_s_$r")"); backs+=("$(get "death_back_s_$r")"); done
        med() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
        mx() { printf '%s\n' "$@" | sort -g | tail -n 1; }
        echo
        echo "gateway death (vdcnet only; two gateways, each the other's Peer; gateway 1 SIGKILLed, $GW2 asked every 20 ms):"
        over="$(printf '%s\n' "${gones[@]}" | awk '$1 > 3.5' | wc -l)"
        echo "  gone from the survivor's answers: ${gones[*]} s (median $(med "${gones[@]}"), max $(mx "${gones[@]}"); README bound 3.5 s: $over of $death_runs over)"
        echo "  listed again after QEMU start:    ${backs[*]} s (median $(med "${backs[@]}"))"
        echo "  survivor stats: $(get death_stats_survivor) $(get death_peer_survivor)"
        [ ! -s "$work/death.odd" ] || { echo "  odd answers while waiting:"; sort "$work/death.odd" | uniq -c | sed 's/^/    /'; }
    fi
    echo
    cat "$out"
} | tee "$work/table.txt"
