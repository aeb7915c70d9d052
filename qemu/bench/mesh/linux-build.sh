#!/usr/bin/env bash
# Builds the Linux router VM used as the peer in the mesh benchmark: Debian 12's cloud
# kernel plus a small gzip'd cpio initramfs (busybox-static, iproute2's `ip`, `wg`, the
# virtio-net and wireguard modules with everything they depend on, and ./init).
#
# Downloads with `apt-get download` (no install) into a cache dir, extracts, and writes
#   $LR_CACHE/out/vmlinuz-<kver>, $LR_CACHE/out/initrd-<kver>.img and
#   $LR_CACHE/out/linux-router.env (LR_KVER=, LR_KERNEL=, LR_INITRD=; sourced by pair.sh).
# Idempotent: the .debs are kept, and the initramfs is rebuilt only when its inputs change.
#
# Usage: qemu/bench/mesh/linux-build.sh          (root: apt-get, mknod)
# Env:   LR_CACHE       cache dir (default <repo>/target/linux-router, which is gitignored)
#        LR_KERNEL_PKG  kernel package (default: what linux-image-cloud-amd64 depends on)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
cache="${LR_CACHE:-$repo/target/linux-router}"

log() { echo "linux-router/build: $*" >&2; }

# Host tools. `ip` and `wg` are copied from the host into the initramfs (with their
# libraries), so the host must be glibc/x86_64 like the guest; on Debian 12 it is.
need_pkgs=()
command -v apt-get >/dev/null || { log "needs apt-get (Debian)"; exit 1; }
command -v dpkg-deb >/dev/null || need_pkgs+=(dpkg)
command -v cpio >/dev/null || need_pkgs+=(cpio)
command -v gzip >/dev/null || need_pkgs+=(gzip)
command -v depmod >/dev/null || need_pkgs+=(kmod)
command -v wg >/dev/null || need_pkgs+=(wireguard-tools)
[ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || need_pkgs+=(iproute2)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
    log "installing ${need_pkgs[*]}"
    apt-get install -y -q "${need_pkgs[@]}" >&2 || { apt-get update -q >&2 && apt-get install -y -q "${need_pkgs[@]}" >&2; }
fi

# Which kernel: the one Debian 12's cloud meta-package points at, unless overridden.
kpkg="${LR_KERNEL_PKG:-}"
if [ -z "$kpkg" ]; then
    kpkg="$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
        awk '$1 == "Depends:" && $2 ~ /^linux-image-.*-cloud-amd64$/ { print $2; exit }')"
    if [ -z "$kpkg" ]; then
        apt-get update -q >&2
        kpkg="$(apt-cache depends linux-image-cloud-amd64 |
            awk '$1 == "Depends:" && $2 ~ /^linux-image-.*-cloud-amd64$/ { print $2; exit }')"
    fi
fi
[ -n "$kpkg" ] || { log "cannot find a linux-image-*-cloud-amd64 package"; exit 1; }
kver="${kpkg#linux-image-}"

mkdir -p "$cache/debs" "$cache/out"

# Fetch (once). `apt-get download` writes into the current dir; as root it would drop to
# the _apt user, who may not be able to write the cache dir, so keep it as root.
fetch() { # package -> path of its .deb
    local pkg="$1" deb
    deb="$(ls "$cache/debs/${pkg}_"*.deb 2>/dev/null | head -n1 || true)"
    if [ -z "$deb" ]; then
        log "downloading $pkg"
        (cd "$cache/debs" && apt-get -q -o APT::Sandbox::User=root download "$pkg" >&2) || {
            apt-get update -q >&2
            (cd "$cache/debs" && apt-get -q -o APT::Sandbox::User=root download "$pkg" >&2)
        }
        deb="$(ls "$cache/debs/${pkg}_"*.deb | head -n1)"
    fi
    echo "$deb"
}
kdeb="$(fetch "$kpkg")"
bbdeb="$(fetch busybox-static)"

# Unpack (once per .deb) and generate modules.dep, which the package does not ship
# (the postinst runs depmod).
unpack() { # deb dir
    if [ ! -e "$2/.unpacked" ] || [ "$2/.unpacked" -ot "$1" ]; then
        rm -rf "$2" && mkdir -p "$2"
        dpkg-deb -x "$1" "$2"
        touch "$2/.unpacked"
    fi
}
kroot="$cache/kernel-$kver"
unpack "$kdeb" "$kroot"
unpack "$bbdeb" "$cache/busybox"
moddir="$kroot/lib/modules/$kver"
[ -s "$moddir/modules.dep" ] || depmod -b "$kroot" "$kver"

# Module load order: for each wanted module, its dependencies as modules.dep lists them,
# in reverse (that is modprobe's order), then the module itself; each loaded once.
wanted=(virtio_pci virtio_net wireguard)
order=()
seen=" "
for m in "${wanted[@]}"; do
    line="$(grep -E "(^|/)${m}\.ko(\.[gx]z|\.zst)?:" "$moddir/modules.dep" || true)"
    if [ -z "$line" ]; then
        grep -qE "/${m}\.ko" "$moddir/modules.builtin" && continue # built in: nothing to load
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

ipbin="$(command -v ip)"; ipbin="$(readlink -f "$ipbin")"
wgbin="$(readlink -f "$(command -v wg)")"
bbbin="$cache/busybox/bin/busybox"

# Rebuild the initramfs only when something that goes into it changed.
stamp="$(
    {
        echo "$kdeb $bbdeb ${order[*]}"
        sha256sum "$here/linux-init" "$here/linux-build.sh" "$ipbin" "$wgbin" | awk '{ print $1 }'
    } | sha256sum | awk '{ print $1 }'
)"
kernel="$cache/out/vmlinuz-$kver"
initrd="$cache/out/initrd-$kver.img"
if [ -s "$initrd" ] && [ -s "$kernel" ] && [ "$(cat "$cache/out/initrd-$kver.stamp" 2>/dev/null)" = "$stamp" ]; then
    log "up to date: $initrd"
else
    log "building initramfs for $kver (${#order[@]} modules)"
    root="$cache/root"
    rm -rf "$root"
    mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,run,tmp,lib/modules}
    chmod 1777 "$root/tmp"

    # busybox and its applets, except `ip` (iproute2's, below, knows wireguard links).
    cp "$bbbin" "$root/bin/busybox"
    for applet in $("$bbbin" --list-full); do
        case "$applet" in */ip | bin/busybox) continue ;; esac
        mkdir -p "$root/$(dirname "$applet")"
        [ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
    done

    # iproute2's ip and wireguard-tools' wg with their shared libraries (and the loader).
    # Keep the name `ip`: iproute2 looks at argv[0] (renamed, it acts as `ip route`).
    cp "$ipbin" "$root/usr/sbin/ip"
    cp "$wgbin" "$root/usr/bin/wg"
    for lib in $(ldd "$ipbin" "$wgbin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\/.*[^:]$/ { print $1 }' | sort -u); do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done

    # Modules, decompressed if the kernel ships them compressed (busybox insmod might not
    # understand that), listed in load order.
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

    install -m 0755 "$here/linux-init" "$root/init"
    echo "$kver" >"$root/etc/kernel-release"
    # The kernel opens /dev/console before /init runs; without the node there is no
    # output until init has mounted devtmpfs.
    mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null || true
    mknod -m 666 "$root/dev/null" c 1 3 2>/dev/null || true

    (cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet -R 0:0) |
        gzip -9 >"$initrd.tmp"
    mv "$initrd.tmp" "$initrd"
    cp "$kroot/boot/vmlinuz-$kver" "$kernel"
    echo "$stamp" >"$cache/out/initrd-$kver.stamp"
    rm -rf "$root"
    log "built $initrd ($(du -k "$initrd" | cut -f1) KiB), kernel $(du -k "$kernel" | cut -f1) KiB"
fi

cat >"$cache/out/linux-router.env" <<EOF
LR_KVER=$kver
LR_KERNEL=$kernel
LR_INITRD=$initrd
EOF
echo "$cache/out/linux-router.env"
