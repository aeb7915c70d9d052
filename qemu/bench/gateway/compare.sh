#!/usr/bin/env bash
# The gateway benchmark: the vdcnet web gateway against HAProxy in a Linux VM, in one run
# on one machine, with the same clients, the same backend and the same QEMU command line
# but for -kernel/-initrd/-append.
#
#   ns gwb-client                      VM under test                     ns gwb-backend
#   192.168.100.200/24 on br0 --tap-- eth0 192.168.100.1  eth1 10.20.1.1 --tap-- br0 10.20.1.10/24
#   wrk, ab, curl, hold.py            vdcnet gateway | HAProxy          nginx :8080 :8443, hold.py :7000
#
# Figures (each for vdcnet, HAProxy, vdcnet again; see README.md):
#   http_keepalive_rps  wrk -t1 -c$GW_CONNS -d$GW_SECS  http://www.example.org/
#   http_newconn_rps    ab -c$GW_CONNS -t$GW_SECS (no -k: a new connection per request)
#   tls_newconn_cps     wrk ... -H 'Connection: close' https://shop.example.org/ through
#                       SNI passthrough; the backend allows no resumption, so every request
#                       is a new TCP connection and a full TLS 1.3 handshake
#   bulk_mbps           curl -o /dev/null -w %{speed_download}, a ${GW_BULK_MB} MiB body
#   mem_hold_mib        smallest -m (MiB) at which $GW_HOLD connections held through a tcp
#                       service all open, echo and stay open while a request is served
#   mem_floor_mib       smallest -m (MiB) that boots and serves all three services
#
# Usage: sudo qemu/bench/gateway/compare.sh          (about 8 min; root: taps, namespaces)
# Env:   GW_SYSTEMS ("vdcnet haproxy vdcnet")  GW_MEM (256)  GW_CPU (max)  GW_SECS (10)
#        GW_CONNS (16)  GW_BULK_MB (100)  GW_HOLD (1000)  GW_MEM_SEARCH (1; 0 skips it)
#        GW_MEM_STEP (1 MiB for vdcnet; HAProxy's search uses max(GW_MEM_STEP, 4))
#        GW_LINUX_APPEND (extra kernel arguments for the Linux VM, e.g. mitigations=off)
#        VDCNET_IMAGE (default: cargo vdcnet build)  GW_KEEP=1 (keep the logs)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"

systems="${GW_SYSTEMS:-vdcnet haproxy vdcnet}"
mem="${GW_MEM:-256}"
cpu="${GW_CPU:-max}"
secs="${GW_SECS:-10}"
conns="${GW_CONNS:-16}"
bulk_mb="${GW_BULK_MB:-100}"
hold="${GW_HOLD:-1000}"
mem_search="${GW_MEM_SEARCH:-1}"
mem_step="${GW_MEM_STEP:-1}"

PUB=192.168.100.1 CLIENT=192.168.100.200 PRIV=10.20.1.1 BACKEND=10.20.1.10

say() { echo "gateway/compare: $*" >&2; }
die() { say "$*"; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (taps, network namespaces)"

need_pkgs=()
command -v qemu-system-x86_64 >/dev/null || need_pkgs+=(qemu-system-x86)
command -v wrk >/dev/null || need_pkgs+=(wrk)
command -v ab >/dev/null || need_pkgs+=(apache2-utils)
command -v nginx >/dev/null || need_pkgs+=(nginx-light)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need_pkgs+=(haproxy)
command -v curl >/dev/null || need_pkgs+=(curl)
command -v openssl >/dev/null || need_pkgs+=(openssl)
command -v python3 >/dev/null || need_pkgs+=(python3)
command -v bc >/dev/null || need_pkgs+=(bc)
command -v flock >/dev/null || need_pkgs+=(util-linux)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
    say "installing ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${need_pkgs[@]}" >&2 || { apt-get update -q >&2 && apt-get install -y -q "${need_pkgs[@]}" >&2; }
fi

exec 9>/run/lock/vdcnet-gwbench.lock
flock -n 9 || die "another run holds /run/lock/vdcnet-gwbench.lock"

image="${VDCNET_IMAGE:-}"
if [ -z "$image" ]; then
    say "building the image"
    image="$(cd "$repo" && cargo vdcnet build 2>/dev/null | tail -n 1)"
fi
[ -f "$image" ] || die "no vdcnet image (VDCNET_IMAGE or cargo vdcnet build)"
envfile="$("$here/linux-build.sh")"
# shellcheck disable=SC1090
. "$envfile"

work="$(mktemp -d "${TMPDIR:-/tmp}/gwbench.XXXXXX")"
chmod 755 "$work"
pids=() # backends, for the whole run
qpid=   # the VM under test
descendants() { # every process below $1, deepest first
    local c
    for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
        descendants "$c"
        echo "$c"
    done
}
cleanup() {
    set +e
    # Subshells of a search still running (an interrupted run), and what they started.
    for pid in $(descendants $$); do
        case " ${pids[*]} " in *" $pid "*) ;; *) kill "$pid" 2>/dev/null ;; esac
    done
    [ -z "$qpid" ] || { kill "$qpid" 2>/dev/null; wait "$qpid" 2>/dev/null; }
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
    ip netns del gwb-client 2>/dev/null
    ip netns del gwb-backend 2>/dev/null
    if [ "${GW_KEEP:-0}" = 1 ]; then say "logs kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

now() { date +%s.%N; }
since() { printf '%.2f' "$(echo "$(now) - $1" | bc -l)"; }

# --- The namespaces: a bridge in each, so the addresses (and the servers bound to them)
# outlive the VMs; each VM's tap joins the bridge of its side.
ip netns del gwb-client 2>/dev/null || true
ip netns del gwb-backend 2>/dev/null || true
for ns in gwb-client gwb-backend; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip -n "$ns" link add br0 type bridge
    ip -n "$ns" link set br0 up
done
ip -n gwb-client addr add "$CLIENT/24" dev br0
ip -n gwb-backend addr add "$BACKEND/24" dev br0
printf '%s www.example.org shop.example.org\n' "$PUB" >"$work/hosts"
# A command in the client namespace, with the public names in its /etc/hosts (a bind
# mount in ip netns exec's private mount namespace: the host's file is untouched).
client() { ip netns exec gwb-client sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' "$work/hosts" "$@"; }

# --- The backend: nginx and the hold server, up for the whole run.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=shop.example.org -addext subjectAltName=DNS:shop.example.org \
    -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
truncate -s "${bulk_mb}M" "$work/big"
sed -e "s|@DIR@|$work|g" -e "s|@ADDR@|$BACKEND|g" "$here/nginx.conf" >"$work/nginx.conf"
ip netns exec gwb-backend nginx -c "$work/nginx.conf" -g 'daemon off;' </dev/null >"$work/nginx.out" 2>&1 9>&- &
pids+=($!)
ip netns exec gwb-backend python3 "$here/hold.py" server "$BACKEND" 7000 </dev/null >"$work/hold-server.out" 2>&1 9>&- &
pids+=($!)
for port in 8080 8443 7000; do
    n=0
    until ip netns exec gwb-backend bash -c "echo >/dev/tcp/$BACKEND/$port" 2>/dev/null; do
        n=$((n + 1))
        [ "$n" -le 100 ] || { cat "$work/nginx.out" "$work/nginx-error.log" >&2; die "nothing listens on $BACKEND:$port"; }
        sleep 0.1
    done
done

# The vdcnet node file: the same services, addresses and health checks as haproxy.cfg.
cat >"$work/node.conf" <<EOF
[Link]
Address = $PUB/24

[Link]
Role = segment
Address = $PRIV/24

[Gateway]
Listen = $PUB

[Service]
Name = www.example.org
Mode = http
Backend = $BACKEND:8080
HealthCheck = http /health

[Service]
Name = shop.example.org
Mode = tls
Backend = $BACKEND:8443

[Service]
Name = hold
Mode = tcp
Port = 7000
Backend = $BACKEND:7000
EOF

# boot SYSTEM MEM LOG: starts the VM under test, plugs its taps into the bridges, waits
# for its ready line and then for all three services to answer through it. Sets qpid,
# t_ready (QEMU start -> ready line) and t_serve (QEMU start -> all three answer).
boot() {
    local system="$1" m="$2" log="$3" kernel initrd append ready
    if [ "$system" = vdcnet ]; then
        kernel="$image" initrd="$work/node.conf" append="vdcnet.stats=1" ready='vdcnet: ready'
    else
        kernel="$GW_KERNEL" initrd="$GW_INITRD" ready='gw-linux: ready'
        append="console=ttyS0 quiet panic=-1 gw.public=$PUB/24 gw.private=$PRIV/24 gw.backend=$BACKEND gw.stats=1"
        append="$append ${GW_LINUX_APPEND:-}"
    fi
    local t0
    t0="$(now)"
    qemu-system-x86_64 -accel tcg -machine pc -cpu "$cpu" -smp 1 -m "$m" \
        -nodefaults -nographic -monitor none -no-reboot -serial "file:$log" \
        -device isa-debug-exit,iobase=0xf4,iosize=4 \
        -kernel "$kernel" -initrd "$initrd" -append "$append" \
        -netdev tap,id=pub,ifname=gwb-pub,script=no,downscript=no \
        -device virtio-net-pci,netdev=pub,addr=3,mac=52:54:00:67:77:01,romfile= \
        -netdev tap,id=priv,ifname=gwb-priv,script=no,downscript=no \
        -device virtio-net-pci,netdev=priv,addr=4,mac=52:54:00:67:77:02,romfile= \
        </dev/null >"$log.qemu" 2>&1 9>&- &
    qpid=$!
    local n=0
    until ip link show gwb-pub >/dev/null 2>&1 && ip link show gwb-priv >/dev/null 2>&1; do
        n=$((n + 1))
        [ "$n" -le 200 ] && kill -0 "$qpid" 2>/dev/null || { cat "$log.qemu" >&2; die "QEMU did not create its taps"; }
        sleep 0.05
    done
    ip link set gwb-pub netns gwb-client
    ip -n gwb-client link set gwb-pub master br0 up
    ip link set gwb-priv netns gwb-backend
    ip -n gwb-backend link set gwb-priv master br0 up
    local deadline=$(($(date +%s) + 90))
    until grep -q "$ready" "$log" 2>/dev/null; do
        kill -0 "$qpid" 2>/dev/null || { cat "$log.qemu" "$log" >&2; die "$system: QEMU exited before ready (-m $m)"; }
        [ "$(date +%s)" -le "$deadline" ] || { tail -n 20 "$log" >&2; die "$system: not ready after 90 s"; }
        sleep 0.05
    done
    t_ready="$(since "$t0")"
    deadline=$(($(date +%s) + 60))
    until [ "$(client curl -s -o /dev/null -w '%{http_code}' --max-time 2 http://www.example.org/ 2>/dev/null)" = 200 ] &&
        client curl -sk -o /dev/null --fail --max-time 2 https://shop.example.org/ 2>/dev/null &&
        client bash -c "exec 3<>/dev/tcp/$PUB/7000 && echo hi >&3 && read -t 2 -r l <&3 && [ \"\$l\" = hi ]" 2>/dev/null; do
        kill -0 "$qpid" 2>/dev/null || { cat "$log" >&2; die "$system: QEMU exited (-m $m)"; }
        [ "$(date +%s)" -le "$deadline" ] || { tail -n 20 "$log" >&2; die "$system: the services do not answer through it"; }
        sleep 0.2
    done
    t_serve="$(since "$t0")"
}
halt() { # ends the VM under test and waits until it is gone (its taps with it)
    [ -n "$qpid" ] || return 0
    kill "$qpid" 2>/dev/null || true
    wait "$qpid" 2>/dev/null || true # a no-op when it was started by a subshell
    local n=0
    while kill -0 "$qpid" 2>/dev/null && [ "$n" -lt 100 ]; do sleep 0.05; n=$((n + 1)); done
    qpid=
}
# The last stats line of the VM under test (vdcnet's gateway counters, or the Linux VM's
# memory and HAProxy's RSS).
stats_line() { grep -a 'vdcnet: stats\|gw-linux: stats' "$1" | tail -n 1 | tr -d '\r'; }
# The stats line with the most connections open (vdcnet's `gw open=`, the Linux VM's
# `tcp_established=`): the one printed while the connections were held.
stats_held() {
    grep -a 'vdcnet: stats\|gw-linux: stats' "$1" | tr -d '\r' | awk '{
        n = 0
        for (i = 1; i <= NF; i++) if ($i ~ /^(open|tcp_established)=/) { split($i, kv, "="); n = kv[2] + 0 }
        if (n >= best) { best = n; line = $0 }
    } END { print line }'
}

# --- Throughput figures: one run of SYSTEM -> $work/NAME.txt (key=value lines).
measure() {
    local name="$1" system="$2" log="$work/$1.log" out="$work/$1.txt"
    say "$name: booting $system (-m $mem -cpu $cpu, TCG)"
    boot "$system" "$mem" "$log"
    say "$name: ready in ${t_ready}s, serving in ${t_serve}s"
    {
        echo "ready_s=$t_ready"
        echo "serve_s=$t_serve"
    } >"$out"
    # Every answer is checked once before it is timed.
    [ "$(client curl -s http://www.example.org/)" = hello ] || die "$name: www does not answer hello"
    [ "$(client curl -s --cacert "$work/cert.pem" https://shop.example.org/)" = tls ] ||
        die "$name: shop does not verify end to end"

    # What the guest's virtio-net driver negotiated, as QEMU set it on the tap (checksum
    # and segmentation offloads let a guest move 64 KiB segments instead of 1,500-byte frames).
    if command -v ethtool >/dev/null; then
        echo "tap_offloads=$(ip netns exec gwb-client ethtool -k gwb-pub 2>/dev/null |
            sed -n 's/^\(tx-checksumming\|tcp-segmentation-offload\): \([a-z]*\).*/\1=\2/p' | tr '\n' ' ')" >>"$out"
    fi
    # The round trip client -> VM (each answers ping itself): for reading the bulk figure.
    local p
    p="$(client ping -q -c 20 -i 0.2 "$PUB" 2>&1 || true)"
    echo "ping_rtt_ms=$(sed -n 's|.*= [0-9.]*/\([0-9.]*\)/.*|\1|p' <<<"$p")" >>"$out"

    say "$name: HTTP keep-alive (wrk -c$conns ${secs}s)"
    client wrk -t1 -c"$conns" -d"${secs}s" http://www.example.org/ >"$work/$name.wrk-ka" 2>&1 || true
    echo "http_keepalive_rps=$(awk '/^Requests\/sec:/ { print $2 }' "$work/$name.wrk-ka")" >>"$out"
    echo "http_keepalive_err=$(errors_wrk "$work/$name.wrk-ka")" >>"$out"
    echo "stats_after_keepalive=$(stats_line "$log")" >>"$out"
    sleep 1

    say "$name: HTTP new connections (ab -c$conns -t$secs)"
    client ab -q -c "$conns" -t "$secs" -n 10000000 -s 10 http://www.example.org/ >"$work/$name.ab" 2>&1 || true
    echo "http_newconn_rps=$(awk '/^Requests per second:/ { print $4 }' "$work/$name.ab")" >>"$out"
    echo "http_newconn_err=$(errors_ab "$work/$name.ab")" >>"$out"
    echo "stats_after_newconn=$(stats_line "$log")" >>"$out"
    sleep 1

    say "$name: TLS new connections through passthrough (wrk, Connection: close)"
    client wrk -t1 -c"$conns" -d"${secs}s" -H 'Connection: close' https://shop.example.org/ >"$work/$name.wrk-tls" 2>&1 || true
    echo "tls_newconn_cps=$(awk '/^Requests\/sec:/ { print $2 }' "$work/$name.wrk-tls")" >>"$out"
    echo "tls_newconn_err=$(errors_wrk "$work/$name.wrk-tls")" >>"$out"
    echo "stats_after_tls=$(stats_line "$log")" >>"$out"
    sleep 1

    say "$name: bulk download of ${bulk_mb} MiB"
    local r
    r="$(client curl -s -o /dev/null --max-time 180 -w '%{speed_download} %{size_download} %{http_code}' http://www.example.org/big || true)"
    read -r speed size code <<<"$r"
    echo "bulk_mbps=$(echo "scale=1; ${speed:-0} * 8 / 1000000" | bc -l)" >>"$out"
    echo "bulk_bytes=${size:-0}" >>"$out"
    echo "bulk_http=${code:-none}" >>"$out"
    echo "stats_after_bulk=$(stats_line "$log")" >>"$out"
    halt
}
errors_wrk() { # "-" or wrk's error lines, joined
    local e
    e="$(grep -E 'Socket errors|Non-2xx' "$1" | sed 's/^ *//' | tr '\n' ';' | sed 's/;$//')"
    echo "${e:--}"
}
errors_ab() {
    local e
    e="$(grep -E '^(Failed requests|Non-2xx responses|Complete requests):|apr_' "$1" | sed 's/  */ /g' | tr '\n' ';' | sed 's/;$//')"
    echo "${e:--}"
}

# --- Memory: does SYSTEM hold $n connections at -m M (n = 0: just boot and serve)?
# 0 yes, 1 no; says what it saw on stdout.
holds_at() {
    local system="$1" m="$2" n="$3" log="$work/mem-$1-$2-$3.log" r
    # A VM that does not even boot at this size is a "no" (boot dies: run it in a subshell).
    if ! (boot "$system" "$m" "$log"; echo "$qpid" >"$work/qpid") 2>"$log.boot-err"; then
        qpid="$(cat "$work/qpid" 2>/dev/null || true)"
        halt
        rm -f "$work/qpid"
        echo "no boot: $(tail -n 1 "$log.boot-err")"
        return 1
    fi
    qpid="$(cat "$work/qpid")"
    rm -f "$work/qpid"
    if [ "$n" = 0 ]; then
        sleep 1.2
        r="booted and serving" rc=0
    else
        r="$(client python3 "$here/hold.py" client "$PUB" 7000 "$n" http://www.example.org/ 2>"$log.hold-err")" && rc=0 || rc=$?
        # The request served meanwhile is reported, not judged (a failure there is not
        # about memory); every one is listed at the end.
        echo "$system -m $m: ${r:-nothing}" >>"$work/hold-requests.txt"
    fi
    kill -0 "$qpid" 2>/dev/null || { r="$r (VM exited: $(tail -n 2 "$log" | tr -d '\r' | tr '\n' ' '))"; rc=1; }
    local s
    s="$(stats_held "$log")"
    halt
    echo "$r | $s"
    return "$rc"
}
# Smallest M in (lo, hi] with `holds_at SYSTEM M N` true, to within `step` MiB, found by
# bisection (assumes that more memory never hurts); "> hi" when hi itself fails.
search_mem() {
    local system="$1" n="$2" lo="$3" hi="$4" step="$5" what
    what="$(holds_at "$system" "$hi" "$n")" || { say "mem $system n=$n: -m $hi: FAILS: $what"; echo "> $hi"; return; }
    say "mem $system n=$n: -m $hi: ok: $what"
    while [ $((hi - lo)) -gt "$step" ]; do
        local mid=$(((lo + hi) / 2))
        if what="$(holds_at "$system" "$mid" "$n")"; then
            say "mem $system n=$n: -m $mid: ok: $what"
            hi=$mid
        else
            say "mem $system n=$n: -m $mid: fails: $what"
            lo=$mid
        fi
    done
    echo "$hi"
}

t_run="$(now)"
i=0
names=()
for s in $systems; do
    i=$((i + 1))
    names+=("$s-$i")
    measure "$s-$i" "$s"
done

declare -A memfig
if [ "$mem_search" = 1 ]; then
    lstep=$((mem_step > 4 ? mem_step : 4))
    memfig[vdcnet]="$(search_mem vdcnet "$hold" 2 64 "$mem_step")"
    memfig[haproxy]="$(search_mem haproxy "$hold" 32 256 "$lstep")"
    # The floor: the smallest -m that boots and serves at all, below the figure above.
    top() { case "$1" in ">"*) echo "$2" ;; *) echo "$1" ;; esac; }
    memfig[vdcnet0]="$(search_mem vdcnet 0 1 "$(top "${memfig[vdcnet]}" 64)" "$mem_step")"
    memfig[haproxy0]="$(search_mem haproxy 0 32 "$(top "${memfig[haproxy]}" 256)" "$lstep")"
fi

# --- The table.
get() { sed -n "s/^$2=//p" "$work/$1.txt"; }
mean_of() { # system key -> mean over its runs
    local s="$1" k="$2" sum=0 n=0 v
    for nm in "${names[@]}"; do
        [ "${nm%-*}" = "$s" ] || continue
        v="$(get "$nm" "$k")"
        [ -n "$v" ] || continue
        sum="$(echo "$sum + $v" | bc -l)"; n=$((n + 1))
    done
    [ "$n" -gt 0 ] && echo "scale=2; $sum / $n" | bc -l || echo ""
}
echo
echo "gateway benchmark: QEMU TCG -machine pc -cpu $cpu -smp 1 -m $mem; vdcnet $(stat -c %s "$image") bytes; Linux $GW_KVER + HAProxy $GW_HAPROXY"
echo "clients in ns gwb-client ($CLIENT), backend nginx in ns gwb-backend ($BACKEND); $conns connections, ${secs} s per figure"
printf '\n%-22s' figure
for nm in "${names[@]}"; do printf ' %12s' "$nm"; done
printf '  %s\n' "vdcnet/HAProxy (means)"
for k in http_keepalive_rps http_newconn_rps tls_newconn_cps bulk_mbps ping_rtt_ms ready_s serve_s; do
    printf '%-22s' "$k"
    for nm in "${names[@]}"; do printf ' %12s' "$(get "$nm" $k)"; done
    v="$(mean_of vdcnet $k)" h="$(mean_of haproxy $k)"
    if [ -n "$v" ] && [ -n "$h" ] && [ "$(echo "$h > 0 && $v > 0" | bc -l)" = 1 ]; then
        printf '  %.2fx\n' "$(echo "$v / $h" | bc -l)"
    else
        printf '  -\n'
    fi
done
if [ "$mem_search" = 1 ]; then
    echo
    echo "memory (MiB of -m; bisection, steps of $mem_step MiB for vdcnet and $lstep MiB for the Linux VM):"
    printf '  %-36s %8s %8s\n' "" vdcnet haproxy
    printf '  %-36s %8s %8s\n' "smallest -m holding $hold connections" "${memfig[vdcnet]}" "${memfig[haproxy]}"
    printf '  %-36s %8s %8s\n' "smallest -m that boots and serves" "${memfig[vdcnet0]}" "${memfig[haproxy0]}"
    if [[ "${memfig[vdcnet]}${memfig[haproxy]}" =~ ^[0-9]+$ ]]; then
        printf '  vdcnet/HAProxy for %d connections: %.2fx the RAM\n' "$hold" "$(echo "${memfig[vdcnet]} / ${memfig[haproxy]}" | bc -l)"
    fi
fi
if [ -s "$work/hold-requests.txt" ]; then
    echo "  each hold test: paced echoes (judged); a request for www (curl=HTTP status) and all $hold echoing at once (burst_*) while held (reported only):"
    sed 's/^/    /' "$work/hold-requests.txt"
fi
echo "(ping_rtt_ms: ping -c 20 -i 0.2 client -> VM; ready_s, serve_s: QEMU start -> ready line / -> all three services answer; lower is better)"
echo
echo "errors and stats lines:"
for nm in "${names[@]}"; do
    for k in http_keepalive_err http_newconn_err tls_newconn_err bulk_bytes bulk_http tap_offloads \
        stats_after_keepalive stats_after_newconn stats_after_tls stats_after_bulk; do
        echo "  $nm $k: $(get "$nm" $k)"
    done
done
echo
for nm in "${names[@]}"; do sed "s/^/gw_${nm//-/_}_/" "$work/$nm.txt" | grep -v '^gw_.*_stats_\|_err=\|_http=\|_bytes=\|_offloads='; done
if [ "$mem_search" = 1 ]; then
    echo "gw_mem_hold_vdcnet_mib=${memfig[vdcnet]}"
    echo "gw_mem_hold_haproxy_mib=${memfig[haproxy]}"
    echo "gw_mem_floor_vdcnet_mib=${memfig[vdcnet0]}"
    echo "gw_mem_floor_haproxy_mib=${memfig[haproxy0]}"
fi
echo "gw_total_s=$(since "$t_run")"
