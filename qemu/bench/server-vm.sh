#!/usr/bin/env bash
# Builds the Linux VM of a server benchmark (qemu/bench/dns, qemu/bench/gateway): the same
# kind of VM as the mesh benchmark's Linux router (Debian 12's cloud kernel, a busybox
# initramfs), holding one server binary from the host with its shared libraries, iproute2's
# `ip`, the virtio-net modules, and the files the caller names (its /init among them). The
# kernel and busybox .debs come from `apt-get download` into the mesh benchmark's cache
# (<repo>/target/linux-router/debs, shared). Rebuilt only when an input changes. Prints the
# path of the env file it writes: $SVM_OUT/$SVM_NAME-linux.env with ${SVM_PREFIX}_KVER,
# ${SVM_PREFIX}_KERNEL, ${SVM_PREFIX}_INITRD and $SVM_VERSION_VAR.
#
# Called by each benchmark's linux-build.sh, which sets (runs as root: apt-get, mknod):
#   SVM_NAME        log prefix and env file name (dns, gateway)
#   SVM_OUT         output directory
#   SVM_PACKAGE     the server's Debian package; SVM_BIN its binary (the same path in the VM)
#   SVM_VERSION_RE  sed expression picking the version out of `$SVM_BIN -v`
#   SVM_PREFIX, SVM_VERSION_VAR   names in the env file
#   SVM_FILES       "SRC:DEST[:MODE] ..." installed into the initramfs (mode 0644 by default)
#   SVM_DIRS        extra directories to create (optional)
# Env also: LR_CACHE (the .deb cache's parent), LR_KERNEL_PKG (default: what
#           linux-image-cloud-amd64 depends on)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
: "${SVM_NAME:?}" "${SVM_OUT:?}" "${SVM_BIN:?}" "${SVM_PACKAGE:?}" "${SVM_PREFIX:?}" "${SVM_VERSION_VAR:?}" "${SVM_VERSION_RE:?}" "${SVM_FILES:?}"
debs="${LR_CACHE:-$repo/target/linux-router}/debs"
out="$SVM_OUT"

log() { echo "$SVM_NAME/linux-build: $*" >&2; }

# The server and `ip` are copied from the host with their libraries: the host must be
# x86_64 glibc (Debian 12 here).
need_pkgs=()
command -v apt-get >/dev/null || { log "needs apt-get (Debian)"; exit 1; }
command -v cpio >/dev/null || need_pkgs+=(cpio)
command -v depmod >/dev/null || need_pkgs+=(kmod)
[ -x "$SVM_BIN" ] || need_pkgs+=("$SVM_PACKAGE")
[ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || need_pkgs+=(iproute2)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
    log "installing ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${need_pkgs[@]}" >&2 || { apt-get update -q >&2 && apt-get install -y -q "${need_pkgs[@]}" >&2; }
fi

kpkg="${LR_KERNEL_PKG:-}"
depends() {
    apt-cache depends linux-image-cloud-amd64 2>/dev/null |
        awk '$1 == "Depends:" && $2 ~ /^linux-image-.*-cloud-amd64$/ { print $2; exit }'
}
[ -n "$kpkg" ] || kpkg="$(depends)"
[ -n "$kpkg" ] || { apt-get update -q >&2; kpkg="$(depends)"; }
[ -n "$kpkg" ] || { log "cannot find a linux-image-*-cloud-amd64 package"; exit 1; }
kver="${kpkg#linux-image-}"

mkdir -p "$debs" "$out"
fetch() { # package -> path of its .deb (downloaded once; as root, see the mesh's build)
    local deb
    deb="$(ls "$debs/${1}_"*.deb 2>/dev/null | head -n1 || true)"
    if [ -z "$deb" ]; then
        log "downloading $1"
        (cd "$debs" && apt-get -q -o APT::Sandbox::User=root download "$1" >&2) || {
            apt-get update -q >&2
            (cd "$debs" && apt-get -q -o APT::Sandbox::User=root download "$1" >&2)
        }
        deb="$(ls "$debs/${1}_"*.deb | head -n1)"
    fi
    echo "$deb"
}
kdeb="$(fetch "$kpkg")"
bbdeb="$(fetch busybox-static)"

unpack() { # deb dir
    if [ ! -e "$2/.unpacked" ] || [ "$2/.unpacked" -ot "$1" ]; then
        rm -rf "$2" && mkdir -p "$2"
        dpkg-deb -x "$1" "$2"
        touch "$2/.unpacked"
    fi
}
kroot="$out/kernel-$kver"
unpack "$kdeb" "$kroot"
unpack "$bbdeb" "$out/busybox"
moddir="$kroot/lib/modules/$kver"
[ -s "$moddir/modules.dep" ] || depmod -b "$kroot" "$kver"

# virtio_pci and virtio_net with their dependencies, in modprobe's order.
order=()
seen=" "
for m in virtio_pci virtio_net; do
    line="$(grep -E "(^|/)${m}\.ko(\.[gx]z|\.zst)?:" "$moddir/modules.dep" || true)"
    if [ -z "$line" ]; then
        grep -qE "/${m}\.ko" "$moddir/modules.builtin" && continue
        log "module $m not found in $moddir"; exit 1
    fi
    read -r -a deps <<<"${line#*:}"
    list=()
    for ((i = ${#deps[@]} - 1; i >= 0; i--)); do list+=("${deps[i]}"); done
    list+=("${line%%:*}")
    for p in "${list[@]}"; do
        case "$seen" in *" $p "*) continue ;; esac
        seen+="$p "
        order+=("$p")
    done
done

ipbin="$(readlink -f "$(command -v ip)")"
srvbin="$(readlink -f "$SVM_BIN")"
bbbin="$out/busybox/bin/busybox"
srvver="$("$srvbin" -v 2>&1 | sed -n "$SVM_VERSION_RE")"
srcs=()
for f in $SVM_FILES; do srcs+=("${f%%:*}"); done

stamp="$(
    {
        echo "$kdeb $bbdeb ${order[*]}"
        echo "$SVM_BIN $SVM_FILES ${SVM_DIRS:-}"
        sha256sum "$0" "${srcs[@]}" "$ipbin" "$srvbin" | awk '{ print $1 }'
    } | sha256sum | awk '{ print $1 }'
)"
kernel="$out/vmlinuz-$kver"
initrd="$out/initrd-$kver.img"
if [ -s "$initrd" ] && [ -s "$kernel" ] && [ "$(cat "$out/initrd-$kver.stamp" 2>/dev/null)" = "$stamp" ]; then
    log "up to date: $initrd"
else
    log "building initramfs for $kver with $SVM_PACKAGE $srvver (${#order[@]} modules)"
    root="$out/root"
    rm -rf "$root"
    mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,run,tmp,lib/modules}
    for d in ${SVM_DIRS:-}; do mkdir -p "$root/$d"; done
    chmod 1777 "$root/tmp"
    cp "$bbbin" "$root/bin/busybox"
    for applet in $("$bbbin" --list-full); do
        case "$applet" in */ip | bin/busybox) continue ;; esac
        mkdir -p "$root/$(dirname "$applet")"
        [ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
    done
    cp "$ipbin" "$root/usr/sbin/ip"
    cp "$srvbin" "$root$SVM_BIN"
    for lib in $(ldd "$ipbin" "$srvbin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\/.*[^:]$/ { print $1 }' | sort -u); do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
    : >"$root/etc/modules"
    for p in "${order[@]}"; do
        dst="${p%.xz}"; dst="${dst%.gz}"; dst="${dst%.zst}"
        mkdir -p "$root/lib/modules/$(dirname "$dst")"
        case "$p" in
            *.xz) xz -dc "$moddir/$p" >"$root/lib/modules/$dst" ;;
            *.gz) gzip -dc "$moddir/$p" >"$root/lib/modules/$dst" ;;
            *.zst) zstd -qdc "$moddir/$p" >"$root/lib/modules/$dst" ;;
            *) cp "$moddir/$p" "$root/lib/modules/$dst" ;;
        esac
        echo "$dst" >>"$root/etc/modules"
    done
    for f in $SVM_FILES; do # SRC:DEST[:MODE]
        IFS=: read -r fsrc fdst fmode <<<"$f"
        mkdir -p "$root/$(dirname "$fdst")"
        install -m "${fmode:-0644}" "$fsrc" "$root/$fdst"
    done
    printf 'root:x:0:0:root:/:/bin/sh\n' >"$root/etc/passwd"
    printf 'root:x:0:\n' >"$root/etc/group"
    mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null || true
    mknod -m 666 "$root/dev/null" c 1 3 2>/dev/null || true
    (cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet -R 0:0) |
        gzip -9 >"$initrd.tmp"
    mv "$initrd.tmp" "$initrd"
    cp "$kroot/boot/vmlinuz-$kver" "$kernel"
    echo "$stamp" >"$out/initrd-$kver.stamp"
    log "built $initrd ($(du -k "$initrd" | cut -f1) KiB gzip'd, $(du -sk "$root" | cut -f1) KiB unpacked)"
    rm -rf "$root"
fi

cat >"$out/$SVM_NAME-linux.env" <<EOF
${SVM_PREFIX}_KVER=$kver
${SVM_PREFIX}_KERNEL=$kernel
${SVM_PREFIX}_INITRD=$initrd
$SVM_VERSION_VAR=$srvver
EOF
echo "$out/$SVM_NAME-linux.env"
