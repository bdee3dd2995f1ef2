#!/bin/bash
# debian-check.sh - build the Debian packages from a copy of the tree, list
# them, install them and build and run a consumer against the -dev package.
#
#   tests/debian-check.sh            dpkg -x into a temporary root (the
#                                    system is left alone)
#   tests/debian-check.sh --system   dpkg -i into the system (root)
#
# Needs the Build-Depends of debian/control (dpkg-checkbuilddeps says which
# are missing), dpkg-dev, a C compiler and pkg-config; lintian is run when
# installed (errors fail, warnings are printed). Not part of ctest.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
mode=extract
case "${1:-}" in
"") ;;
--system) mode=system ;;
*) echo "usage: $0 [--system]" >&2; exit 2 ;;
esac
ver=$(dpkg-parsechangelog -l "$top/debian/changelog" -S Version)
upver=${ver%-*}
march=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
tmp=$(mktemp -d /tmp/libiopf-deb.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
step() { printf '\n== %s\n' "$*"; }

step "symbols file current"
"$top/debian/gen-symbols.sh" --check

step "copy of the tree in $tmp/libiopf-$upver"
src=$tmp/libiopf-$upver
mkdir -p "$src"
tar -C "$top" --exclude=./.git --exclude='./build*' --exclude='./obj-*' \
    --exclude=./debian/tmp --exclude=./debian/.debhelper -cf - . | tar -C "$src" -xf -

step "dpkg-buildpackage -us -uc -b"
(cd "$src" && DEB_BUILD_OPTIONS="parallel=1 nocheck" \
	dpkg-buildpackage -us -uc -b >"$tmp/build.log" 2>&1) ||
	{ tail -40 "$tmp/build.log"; echo "FAIL: package build ($tmp/build.log)"; exit 1; }
changes=$(ls "$tmp"/libiopf_"$ver"_*.changes)
mapfile -t debs < <(ls "$tmp"/*.deb | grep -v -- '-dbgsym_')
for p in libiopf1 libiopf-dev libiopf-doc iopf-tools; do
	ls "$tmp/${p}_$ver"_*.deb >/dev/null || { echo "FAIL: no $p package"; exit 1; }
done

for d in "${debs[@]}"; do
	step "dpkg -c $(basename "$d")"
	dpkg -c "$d" | awk '{ $1 = $2 = $3 = $4 = $5 = ""; sub(/^ +/, ""); print }'
done

if command -v lintian >/dev/null; then
	step "lintian $(basename "$changes")"
	lintian "$changes" 2>&1 | grep -v 'running with root privileges' | tee "$tmp/lintian.txt" || true
	if grep -q '^E:' "$tmp/lintian.txt"; then echo "FAIL: lintian errors"; exit 1; fi
fi

if [ "$mode" = system ]; then
	step "dpkg -i"
	dpkg -i "${debs[@]}"
	root=
	export PKG_CONFIG_PATH=
	unset LD_LIBRARY_PATH
else
	step "dpkg -x into $tmp/root"
	root=$tmp/root
	for d in "${debs[@]}"; do dpkg -x "$d" "$root"; done
	# libiopf.pc finds its prefix from where it lies (${pcfiledir}), so
	# no sysroot rewriting is needed, only the search path.
	export PKG_CONFIG_PATH=$root/usr/lib/$march/pkgconfig
	export LD_LIBRARY_PATH=$root/usr/lib/$march
fi

step "consumer built with pkg-config --cflags --libs libiopf"
cat >"$tmp/consumer.c" <<'C'
#include <iopf/iopf.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	const char *v = iopf_version();
	printf("iopf_version() = %s\n", v);
	return argc > 1 && strcmp(v, argv[1]) != 0;
}
C
flags=$(pkg-config --cflags --libs libiopf)
echo "pkg-config: $flags"
[ "$(pkg-config --modversion libiopf)" = "$upver" ] ||
	{ echo "FAIL: pkg-config --modversion is not $upver"; exit 1; }
# shellcheck disable=SC2086
cc -o "$tmp/consumer" "$tmp/consumer.c" $flags
lib=$(ldd "$tmp/consumer" | awk '/libiopf\.so\.1/ { print $3 }')
echo "libiopf.so.1 from $lib"
[ "$lib" -ef "$root/usr/lib/$march/libiopf.so.1" ] ||
	{ echo "FAIL: not the packaged libiopf.so.1"; exit 1; }
"$tmp/consumer" "$upver" || { echo "FAIL: consumer"; exit 1; }

step "consumer linked statically (pkg-config --static, libiopf.a)"
# shellcheck disable=SC2086
cc -o "$tmp/consumer-static" "$tmp/consumer.c" $(pkg-config --cflags libiopf) \
	"$root/usr/lib/$march/libiopf.a" $(pkg-config --static --libs-only-other --libs-only-l libiopf | sed 's/-liopf//')
"$tmp/consumer-static" "$upver" || { echo "FAIL: static consumer"; exit 1; }

step "packaged iopf-sim"
"$root/usr/bin/iopf-sim" --groups 2000 >"$tmp/sim.txt" 2>&1 || { cat "$tmp/sim.txt"; echo "FAIL: iopf-sim"; exit 1; }
grep 'OK: every group answered exactly once' "$tmp/sim.txt"

printf '\nOK: packages built, listed, installed (%s), consumer built and run\n' "$mode"
