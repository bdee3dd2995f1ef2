#!/bin/bash
# install-check.sh BUILD_DIR - libiopf-glib as a user gets it: install to a
# temporary prefix, build examples/iopf-glib-vmm.c with
# `pkg-config libiopf-glib` alone (it pulls in libiopf and glib-2.0), check
# it links the installed libraries and run it.
set -euo pipefail
build=$1
src=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d /var/tmp/iopf-glib-install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
pc=$(find "$tmp/prefix" -name libiopf-glib.pc)
[ -n "$pc" ] || { echo "libiopf-glib.pc not installed"; exit 1; }
libdir=$(dirname "$(dirname "$pc")")
[ -f "$tmp/prefix/include/iopf/iopf-glib.h" ] || { echo "iopf-glib.h not installed"; exit 1; }
export PKG_CONFIG_PATH=$(dirname "$pc")
cc -Wall -Wextra -Werror -O2 -o "$tmp/iopf-glib-vmm" "$src/examples/iopf-glib-vmm.c" \
	$(pkg-config --cflags --libs libiopf-glib) -Wl,-rpath,"$libdir"
linked=$(ldd "$tmp/iopf-glib-vmm")
for l in libiopf-glib.so.1 libiopf.so.1; do
	grep -q "$libdir/$l" <<<"$linked" || { echo "not linked to the installed $l"; exit 1; }
done
"$tmp/iopf-glib-vmm" --groups 300 | tail -n 1
echo "libiopf-glib installed: header, .pc, library: OK"
