#!/bin/bash
# Build the tiny real test guest (see README.md here) from Debian packages only.
# Prints the output directory on stdout, logs on stderr.
#
#   tools/guest-image/build.sh        -> $ALTDRIVER_CACHE/guest-<hash>/
#
# The directory name is keyed by the content of the files in this directory;
# an existing complete build (.complete) is reused as it is.
#
# Host packages (installed with apt-get if a tool is missing):
#   dosfstools mtools fdisk syslinux syslinux-common cpio kmod qemu-utils
#   (plus apt, dpkg, gzip, util-linux: always there on Debian)
# Guest packages (apt-get download + dpkg-deb -x, never installed; cached in
# $ALTDRIVER_CACHE/debs):
#   linux-image-<current>-cloud-amd64 (what linux-image-cloud-amd64 depends on;
#   override with ALTDRIVER_GUEST_KERNEL_PKG), busybox-static (the shell and
#   all tools: no dynamic linking, which is slow under TCG), busybox + libc6
#   (only for blkid, which busybox-static lacks), qemu-guest-agent and the
#   libraries qemu-ga loads (QGA_PKGS; the build fails if one is missing).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../common.sh
source "$HERE/../common.sh"

MODULES="virtio_pci virtio_blk virtio_scsi virtio_net virtio_console button evdev
         iso9660 vfat nls_cp437 nls_ascii nls_iso8859_1 nls_utf8 ext4 sd_mod sr_mod ata_piix"
DISK_MIB=32

inputs=$(cd "$HERE" && find . -maxdepth 1 -type f ! -name '.*' | LC_ALL=C sort)
HASH=$(cd "$HERE" && content_hash $inputs)
OUT=$ALTDRIVER_CACHE/guest-$HASH

if [ -e "$OUT/.complete" ]; then
    touch "$OUT/.complete"   # in use: not pruned (below)
    echo "$OUT"
    exit 0
fi

start=$(date +%s.%N)
mkdir -p "$ALTDRIVER_CACHE" "$ALTDRIVER_CACHE/debs"

# One build per hash at a time; the loser of a race just reuses the result.
exec 9>"$ALTDRIVER_CACHE/.guest-$HASH.lock"
flock 9
if [ -e "$OUT/.complete" ]; then
    echo "$OUT"
    exit 0
fi

# ---- host tools -------------------------------------------------------------
apt_install() {
    log "installing $*"
    local apt=(apt-get -y -q --no-install-recommends -o DPkg::Lock::Timeout=600)
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install "$@" >&2 \
        || { apt-get -q -o DPkg::Lock::Timeout=600 update >&2 \
             && DEBIAN_FRONTEND=noninteractive "${apt[@]}" install "$@" >&2; }
}
missing=()
command -v mkfs.vfat >/dev/null || missing+=(dosfstools)
command -v mcopy >/dev/null || missing+=(mtools)
command -v sfdisk >/dev/null || missing+=(fdisk)
command -v syslinux >/dev/null || missing+=(syslinux)
[ -e /usr/lib/syslinux/mbr/mbr.bin ] || missing+=(syslinux-common)
command -v cpio >/dev/null || missing+=(cpio)
command -v depmod >/dev/null || missing+=(kmod)
command -v qemu-img >/dev/null || missing+=(qemu-utils)
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing packages ${missing[*]} (run as root to install them)"
    apt_install "${missing[@]}"
fi

# ---- work area (same file system as OUT: the final rename is atomic) -------
rm -rf "$ALTDRIVER_CACHE/.guest-$HASH.tmp."*   # left by a killed build (we hold the lock)
STAGE=$(mktemp -d "$ALTDRIVER_CACHE/.guest-$HASH.tmp.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
W=$STAGE/work
mkdir -p "$W/dl" "$W/x" "$W/root"

# ---- guest packages -----------------------------------------------------------
# (apt-cache takes most of a second per call here: ask it as little as possible)
cloud_kernel() {
    apt-cache depends linux-image-cloud-amd64 2>/dev/null \
        | awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }'
}
declare -A VER DEB
candidates() { # fills VER[pkg] with the candidate versions of "$@"
    local p v
    while read -r p v; do VER[$p]=$v; done < <(apt-cache show --no-all-versions "$@" 2>/dev/null \
        | awk '/^Package: / { p = $2 } /^Version: / { print p, $2 }')
}
KPKG=${ALTDRIVER_GUEST_KERNEL_PKG:-$(cloud_kernel)}
# what /usr/sbin/qemu-ga links (the build checks that the list is whole)
QGA_PKGS="qemu-guest-agent libglib2.0-0 libpcre2-8-0 libnuma1 libudev1 liburing2"
GPKGS="busybox-static busybox libc6 $QGA_PKGS"
# shellcheck disable=SC2086
[ -n "$KPKG" ] && candidates "$KPKG" $GPKGS
complete=1
for p in "$KPKG" $GPKGS; do [ -n "$p" ] && [ -n "${VER[$p]:-}" ] || complete=0; done
if [ "$complete" = 0 ]; then
    log "apt-get update (package lists missing or stale)"
    apt-get -q -o DPkg::Lock::Timeout=600 update >&2
    KPKG=${ALTDRIVER_GUEST_KERNEL_PKG:-$(cloud_kernel)}
    [ -n "$KPKG" ] || die "cannot find the cloud kernel package"
    # shellcheck disable=SC2086
    candidates "$KPKG" $GPKGS
fi
# shellcheck disable=SC2206
PKGS=("$KPKG" $GPKGS)
need=()
for p in "${PKGS[@]}"; do
    v=${VER[$p]:-}
    [ -n "$v" ] || die "no candidate version for $p"
    DEB[$p]=$ALTDRIVER_CACHE/debs/${p}_${v//:/%3a}_amd64.deb
    [ -s "${DEB[$p]}" ] || need+=("$p=$v")
done
if [ ${#need[@]} -gt 0 ]; then
    log "downloading ${need[*]}"
    (cd "$W/dl" && apt-get -q -o APT::Sandbox::User=root download "${need[@]}" >&2)
    for p in "${PKGS[@]}"; do
        [ -s "${DEB[$p]}" ] && continue
        f=$(ls "$W/dl/${p}_"*.deb)
        mv -f "$f" "${DEB[$p]}"
    done
fi
log "kernel package $KPKG"
dpkg-deb -x "${DEB[$KPKG]}" "$W/x"
dpkg-deb -x "${DEB[busybox-static]}" "$W/bbs"
# the dynamically linked programs and their libraries
for p in busybox libc6 $QGA_PKGS; do dpkg-deb -x "${DEB[$p]}" "$W/bbd"; done

KVER=${KPKG#linux-image-}
[ -f "$W/x/boot/vmlinuz-$KVER" ] || die "no /boot/vmlinuz-$KVER in $KPKG"

# ---- initramfs ------------------------------------------------------------------
R=$W/root
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,run,tmp,mnt,var/log,var/run,etc/acpi/PWRF,etc/altdriver}
mkdir -p "$R/lib/x86_64-linux-gnu" "$R/lib64" "$R/lib/modules/$KVER"

# copy_dynamic PROGRAM...: the libraries of programs of $W/bbd (paths in
# it) into the initramfs, found as the guest's loader finds them: by the
# loader of libc6 itself, searching only what was unpacked (ldd without a
# chroot). A library from the host's own directories means a package is
# missing from GPKGS.
LIBDIR=lib/x86_64-linux-gnu
copy_dynamic() {
    local prog out lib
    for prog in "$@"; do
        out=$("$W/bbd/$LIBDIR/ld-linux-x86-64.so.2" --library-path \
              "$W/bbd/$LIBDIR:$W/bbd/usr/$LIBDIR" --list "$W/bbd/$prog" 2>&1) \
            || die "$prog: $(echo "$out" | grep -v ' => /' | xargs)"
        for lib in $(echo "$out" | awk '$2 == "=>" { print $3 }'); do
            case $lib in
                "$W/bbd/"*) cp -L "$lib" "$R/$LIBDIR/" ;;
                *) die "$prog needs $lib, which no package in GPKGS has" ;;
            esac
        done
    done
}

# busybox-static for everything; blkid from the dynamic busybox + libc6
cp "$W/bbs/bin/busybox" "$R/bin/busybox"
"$R/bin/busybox" --list-full | while read -r a; do
    [ "$a" = bin/busybox ] || [ -L "$R/$a" ] || ln -s /bin/busybox "$R/$a"
done
mkdir -p "$R/usr/lib/altdriver"
cp "$W/bbd/bin/busybox" "$R/usr/lib/altdriver/busybox"
copy_dynamic bin/busybox   # (the loader too: it lists itself)
ln -s /$LIBDIR/ld-linux-x86-64.so.2 "$R/lib64/ld-linux-x86-64.so.2"
rm -f "$R/sbin/blkid"
ln -s /usr/lib/altdriver/busybox "$R/sbin/blkid"
[ -L "$R/bin/sh" ] && [ -L "$R/sbin/acpid" ] || die "busybox-static lacks sh or acpid"
[ -L "$R/usr/bin/mkpasswd" ] || die "busybox-static lacks mkpasswd (chpasswd uses it)"
"$W/bbd/$LIBDIR/ld-linux-x86-64.so.2" --library-path "$W/bbd/$LIBDIR" \
    "$W/bbd/bin/busybox" blkid --help >/dev/null 2>&1 || die "busybox has no blkid"

# The QEMU guest agent. Its guest-set-user-password runs chpasswd, which
# neither busybox has: ours (chpasswd here) edits /etc/shadow.
cp "$W/bbd/usr/sbin/qemu-ga" "$R/usr/sbin/qemu-ga"
copy_dynamic usr/sbin/qemu-ga
install -m 755 "$HERE/chpasswd" "$R/usr/sbin/chpasswd"
install -m 755 "$HERE/fsfreeze-hook" "$R/etc/altdriver/fsfreeze-hook"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$R/etc/passwd"
printf 'root:*:20000:0:99999:7:::\n' >"$R/etc/shadow"
chmod 600 "$R/etc/shadow"
printf 'root:x:0:\n' >"$R/etc/group"

# kernel modules with their dependencies, in load order
depmod -b "$W/x" "$KVER"
# shellcheck disable=SC2086
modprobe -d "$W/x" -S "$KVER" --show-depends -a $MODULES >"$W/deps"
MODDIR=$W/x/lib/modules/$KVER
awk '$1 == "insmod" { print $2 }' "$W/deps" | awk '!seen[$0]++' | while read -r f; do
    rel=${f#"$MODDIR"/}
    mkdir -p "$R/lib/modules/$KVER/$(dirname "$rel")"
    cp "$f" "$R/lib/modules/$KVER/$rel"
    m=${rel##*/}
    echo "${m%%.ko*}"
done >"$R/etc/altdriver/modules"
cp "$MODDIR"/modules.builtin "$MODDIR"/modules.builtin.modinfo "$MODDIR"/modules.order "$R/lib/modules/$KVER/"
depmod -b "$R" "$KVER"     # modules.dep for busybox modprobe (one process loads all)
rm -f "$R/lib/modules/$KVER"/*.bin "$R/lib/modules/$KVER/modules.builtin.modinfo"
log "$(wc -l <"$R/etc/altdriver/modules") modules; built in: $(awk '$1 == "builtin" { print $2 }' "$W/deps" | sort -u | xargs)"

install -m 755 "$HERE/init" "$R/init"
install -m 755 "$HERE/acpi-power" "$R/etc/acpi/PWRF/00000080"
# the kernel opens /dev/console before /init runs (devtmpfs is mounted by init)
mknod -m 600 "$R/dev/console" c 5 1 2>/dev/null || log "warning: cannot mknod dev/console"

(cd "$R" && find . | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 --reproducible) \
    | gzip -n -6 >"$STAGE/initrd.img"
cp "$W/x/boot/vmlinuz-$KVER" "$STAGE/vmlinuz"

# ---- bootable disk: MBR + FAT at 1 MiB + syslinux, no loop device --------------
raw=$W/disk.raw
truncate -s ${DISK_MIB}M "$raw"
printf 'label: dos\nstart=2048, type=e, bootable\n' | sfdisk -q "$raw" >&2
mkfs.vfat -F 16 --offset=2048 -h 2048 -n ALTDRIVER -i 0a17d21e "$raw" $(( (DISK_MIB - 1) * 1024 )) >/dev/null
syslinux --install --offset $((2048 * 512)) "$raw"
dd if=/usr/lib/syslinux/mbr/mbr.bin of="$raw" bs=440 count=1 conv=notrunc status=none
cat >"$W/syslinux.cfg" <<'EOF'
DEFAULT altdriver
PROMPT 0
TIMEOUT 0
LABEL altdriver
  KERNEL /vmlinuz
  INITRD /initrd.img
  APPEND console=ttyS0 quiet no_timer_check altdriver.role=guest
EOF
printf 'guest\n' >"$W/altdriver-role"
printf 'base-image\n' >"$W/marker.txt"
export MTOOLS_SKIP_CHECK=1
mcopy -o -i "$raw@@1M" "$STAGE/vmlinuz" "$STAGE/initrd.img" "$W/syslinux.cfg" \
    "$W/altdriver-role" "$W/marker.txt" ::/
qemu-img convert -O qcow2 "$raw" "$STAGE/disk.qcow2"
TMPDIR=$W "$HERE/customize.sh" "$STAGE/disk.qcow2" "$STAGE/rescue.qcow2" \
    --role rescue --marker rescue-image

{
    cat "$HERE/README.md"
    echo
    echo "## This build"
    echo
    echo "- kernel: $KPKG ${VER[$KPKG]}, busybox-static ${VER[busybox-static]}, busybox ${VER[busybox]} (blkid), libc6 ${VER[libc6]}, qemu-guest-agent ${VER[qemu-guest-agent]}"
    echo "- initramfs: $(stat -c %s "$STAGE/initrd.img") bytes, kernel $(stat -c %s "$STAGE/vmlinuz") bytes"
    echo "- modules: $(xargs <"$R/etc/altdriver/modules")"
} >"$STAGE/README"

rm -rf "$W"
chmod 755 "$STAGE"
chmod 644 "$STAGE"/*
date -u +%FT%TZ >"$STAGE/.complete"
rm -rf "$OUT"          # an incomplete leftover of an interrupted build
mv -T "$STAGE" "$OUT"
trap - EXIT
# Builds of other scripts unused for a day go: another checkout of the
# project (a branch's worktree) may be running tests with its own.
for old in "$ALTDRIVER_CACHE"/guest-*; do
    [ "$old" = "$OUT" ] && continue
    [ -n "$(find "$old/.complete" -mmin -1440 2>/dev/null)" ] || rm -rf "$old"
done
log "built $OUT in $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
echo "$OUT"
