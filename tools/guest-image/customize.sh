#!/bin/bash
# Make a variant of the altdriver test guest image: change files on its FAT
# partition (at 1 MiB) without loop devices or mounts.
#
#   customize.sh SRC.qcow2 DST.qcow2 [--role guest|rescue] [--marker TEXT]
#                [--knob NAME]... [--file NAME=CONTENT]... [--copy NAME=HOSTPATH]...
#                [--rm NAME]...
#
# --role also rewrites altdriver.role= in syslinux.cfg so that the guest knows
# which disk it booted from. Knobs: ignore-acpi, selfreboot, selfpoweroff.
# Needs: qemu-utils (qemu-img), mtools.
set -euo pipefail

usage() { sed -n '2,10s/^# \{0,1\}//p' "$0" >&2; exit 2; }
[ $# -ge 2 ] || usage
SRC=$1 DST=$2
shift 2
[ -f "$SRC" ] || { echo "customize.sh: no such image: $SRC" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/altdriver-customize.XXXXXX")
out=
trap 'rm -rf "$tmp" ${out:+"$out"}' EXIT
raw=$tmp/disk.raw
qemu-img convert -O raw "$SRC" "$raw"
img="$raw@@1M"
export MTOOLS_SKIP_CHECK=1 MTOOLS_NO_VFAT=0

put_text() { # NAME CONTENT
    printf '%s\n' "$2" >"$tmp/f"
    mcopy -o -i "$img" "$tmp/f" "::/$1"
}

while [ $# -gt 0 ]; do
    case $1 in
        --role)
            [ $# -ge 2 ] || usage
            case $2 in guest|rescue) ;; *) echo "customize.sh: bad role $2" >&2; exit 2 ;; esac
            put_text altdriver-role "$2"
            mtype -i "$img" ::/syslinux.cfg | tr -d '\r' \
                | sed "s/altdriver\.role=[a-z]*/altdriver.role=$2/" >"$tmp/syslinux.cfg"
            mcopy -o -i "$img" "$tmp/syslinux.cfg" ::/syslinux.cfg
            shift 2 ;;
        --marker)
            [ $# -ge 2 ] || usage
            put_text marker.txt "$2"; shift 2 ;;
        --knob)
            [ $# -ge 2 ] || usage
            : >"$tmp/f"; mcopy -o -i "$img" "$tmp/f" "::/$2"; shift 2 ;;
        --file)
            [ $# -ge 2 ] && [[ $2 == *=* ]] || usage
            put_text "${2%%=*}" "${2#*=}"; shift 2 ;;
        --copy)
            [ $# -ge 2 ] && [[ $2 == *=* ]] || usage
            mcopy -o -i "$img" "${2#*=}" "::/${2%%=*}"; shift 2 ;;
        --rm)
            [ $# -ge 2 ] || usage
            mdel -i "$img" "::/$2" 2>/dev/null || true; shift 2 ;;
        -h|--help) usage ;;
        *) echo "customize.sh: unknown option $1" >&2; usage ;;
    esac
done

# Write next to DST, then rename: readers never see a half-written image.
out=$(mktemp "$(dirname "$DST")/.$(basename "$DST").XXXXXX")
qemu-img convert -O qcow2 "$raw" "$out"
chmod 644 "$out"
mv -f "$out" "$DST"
out=
