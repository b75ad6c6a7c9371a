#!/usr/bin/env bash
# farm/boards/kernel/extract-debian-kernel.sh: takes the kernel image out of a
# Debian linux-image .deb that ci/install-deps downloaded (the arm64 board's
# kernel). Nothing is downloaded here: the build only extracts.
#
# usage: extract-debian-kernel.sh --deb FILE --out FILE [--config-out FILE]
#   --deb         the linux-image-*.deb (ci/install-deps puts the arm64 one at
#                 /var/cache/libpatch-boards/linux-image-arm64.deb)
#   --out         where boot/vmlinuz-* is copied
#   --config-out  where boot/config-* is copied (optional)
set -euo pipefail
prog=extract-debian-kernel.sh
die() { echo "${prog}: error: $*" >&2; exit 1; }
deb="" out="" config_out=""
while [ $# -gt 0 ]; do
  case $1 in
    --deb) deb=$2; shift ;;
    --out) out=$2; shift ;;
    --config-out) config_out=$2; shift ;;
    -h|--help) sed -n '6,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done
[ -n "$deb" ] && [ -n "$out" ] || die "--deb and --out are required"
[ -f "$deb" ] || die "no kernel package at ${deb}: it is downloaded by \`bash ci/install-deps\` (from Debian's archive), never at build time; run that, or point LP_BOARDS_DEB_DIR at the directory holding linux-image-arm64.deb"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dpkg-deb -x "$deb" "$tmp" || die "dpkg-deb -x ${deb} failed"
images=("$tmp"/boot/vmlinuz-*)
[ -f "${images[0]}" ] || die "${deb} holds no boot/vmlinuz-*"
[ ${#images[@]} = 1 ] || die "${deb} holds several kernels: ${images[*]##*/}"
mkdir -p "$(dirname "$out")"
cp -f "${images[0]}" "${out}.tmp.$$" && mv -f "${out}.tmp.$$" "$out"
if [ -n "$config_out" ]; then
  cp -f "$tmp"/boot/config-* "$config_out"
fi
echo "${prog}: $(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version): ${images[0]##*/} -> ${out}"
