#!/bin/bash
# run.sh BUILD_DIR - built like a user's project: install libiopf to a
# temporary prefix, then build against it
#  - a small consumer, with pkg-config, with find_package(iopf), statically;
#  - every example, with pkg-config, and iopf-sim again with find_package;
# and run each example's smoke test with the binaries built here (the
# mapper inside the test kernel, when there is one).
set -euo pipefail
build=$1
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d /var/tmp/iopf-consumer.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
pcdir=$(find "$tmp/prefix" -name libiopf.pc -printf '%h\n' | head -1)
libdir=$(dirname "$pcdir")
export PKG_CONFIG_PATH=$pcdir
# libiopf.pc needs no other .pc file (libnl-3 is a plain -lnl-3 for static
# links): it works with the system's .pc files hidden, so without
# libnl-3-dev installed.
for f in "--cflags --libs" "--static --libs"; do
	PKG_CONFIG_LIBDIR=$pcdir PKG_CONFIG_PATH= pkg-config $f libiopf >/dev/null ||
		{ echo "pkg-config $f libiopf needs more than libiopf.pc"; exit 1; }
done
# rpath, not LD_LIBRARY_PATH: the binaries also run inside the test VM
cc_pc() { cc -Wall -Werror -O2 "$@" $(pkg-config --cflags --libs libiopf) -Wl,-rpath,"$libdir" -pthread; }

cc_pc -o "$tmp/consumer-pc" "$here/consumer.c"
"$tmp/consumer-pc"
cmake -S "$here" -B "$tmp/cm" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
	-DIOPF_EXAMPLES="$src/examples" -DCMAKE_BUILD_RPATH="$libdir" >/dev/null
cmake --build "$tmp/cm" >/dev/null
"$tmp/cm/consumer-cmake"
# the static library links too, with what `pkg-config --static` adds
# (pthread, libnl-3): -l:libiopf.a picks the archive over the .so
cc -o "$tmp/consumer-static" "$here/consumer.c" $(pkg-config --cflags libiopf) \
	$(pkg-config --static --libs libiopf | sed 's/-liopf\b/-l:libiopf.a/')
# (ldd into a variable: grep -q under pipefail would SIGPIPE ldd)
linked=$(ldd "$tmp/consumer-static")
! grep -q libiopf.so <<<"$linked"
"$tmp/consumer-static"
echo "consumer builds: pkg-config, find_package(iopf), static: OK"

# Every example, through pkg-config, from examples/ alone (-I examples):
# examples/common has their helpers (simulated fault object, the iommufd
# uapi that Debian 12's headers lack, the selftest mock device that plays
# the mapper's device); nothing from lib/ or tests/.
ex=$src/examples
inc=(-I"$ex")
cc_pc -o "$tmp/iopf-sim" "$ex/iopf-sim.c" "$ex/common/simfault.c" "${inc[@]}"
cc_pc -o "$tmp/iopf-vmm-forward" "$ex/iopf-vmm-forward.c" "$ex/common/simfault.c" "${inc[@]}"
cc_pc -o "$tmp/iopf-monitor" "$ex/iopf-monitor.c" "$ex/common/devtable.c" "${inc[@]}"
cc_pc -o "$tmp/iopf-mapper" "$ex/iopf-mapper.c" "$ex/common/mockdev.c" "${inc[@]}"
cc -O2 -o "$tmp/monitor-check" "$src/tests/examples/monitor-check.c" \
	"$ex/common/simfault.c" "${inc[@]}"
for b in iopf-sim iopf-vmm-forward iopf-monitor iopf-mapper; do
	linked=$(ldd "$tmp/$b")
	grep -q "$libdir/libiopf.so.1" <<<"$linked" || { echo "$b: not linked to the installed libiopf"; exit 1; }
done

# Smoke tests of what was built here.
"$tmp/iopf-sim" -g 2000 -q | tee "$tmp/out"; grep -q "^OK: every group answered exactly once" "$tmp/out"
"$tmp/cm/iopf-sim" -g 1000 -q -P fd | tail -1 | grep -q "^OK"
"$tmp/iopf-vmm-forward" | tail -1 | tee "$tmp/out"; grep -q "^OK" "$tmp/out"
"$tmp/monitor-check" "$tmp/iopf-monitor" | tail -1 | tee "$tmp/out"; grep -q "^OK" "$tmp/out"
set +e
"$src/tests/kernel/run-in-vm.sh" "$tmp/iopf-mapper" > "$tmp/out" 2>&1
rc=$?
set -e
if [ $rc -eq 77 ]; then
	echo "iopf-mapper smoke test skipped: $(tail -1 "$tmp/out")"
else
	tail -1 "$tmp/out"
	[ $rc -eq 0 ] && grep -q "^OK: each touched page mapped on demand" "$tmp/out"
fi
echo "examples built like a user's project and smoke-tested: OK"
