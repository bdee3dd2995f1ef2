#!/bin/bash
# run.sh BUILD_DIR - install libiopf to a temporary prefix and build a small
# consumer against it twice: with pkg-config and with find_package(iopf).
set -euo pipefail
build=$1
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d /var/tmp/iopf-consumer.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(find "$tmp/prefix" -name libiopf.pc -printf '%h\n' | head -1)
export PKG_CONFIG_PATH=$libdir
export LD_LIBRARY_PATH=$(dirname "$libdir")
cc -Wall -Werror -o "$tmp/consumer-pc" "$here/consumer.c" $(pkg-config --cflags --libs libiopf)
"$tmp/consumer-pc"
cmake -S "$here" -B "$tmp/cm" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/cm" >/dev/null
"$tmp/cm/consumer-cmake"
# the static library links too, with what `pkg-config --static` adds
# (pthread, libnl-3): -l:libiopf.a picks the archive over the .so
cc -o "$tmp/consumer-static" "$here/consumer.c" $(pkg-config --cflags libiopf) \
	$(pkg-config --static --libs libiopf | sed 's/-liopf\b/-l:libiopf.a/')
! ldd "$tmp/consumer-static" | grep -q libiopf.so
"$tmp/consumer-static"
echo "consumer builds: pkg-config, find_package(iopf), static: OK"
