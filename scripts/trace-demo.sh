#!/bin/bash
# trace-demo.sh [BUILD_DIR] - libiopf's USDT probes firing, seen by
# bpftrace: iopf-sim (a simulated fault fd and the producer path) through
# libiopf.so, then the device-removal unit suite (the cancel probe) through
# the test build linked into iopf-unit. Prints what each probe saw and
# exits non-zero if one of them never fired.
#
# Manual, not part of ctest or CI: it needs root, bpftrace (Debian package
# bpftrace) and a kernel with uprobes, and a build with sys/sdt.h (ctest
# trace.probes says whether the probes are in). doc/tracing.md lists the
# probes and a one-liner for each.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
lib=$(readlink -f "$build/libiopf.so.1")
unit=$(readlink -f "$build/tests/iopf-unit")
sim=$build/examples/iopf-sim
die() { echo "trace-demo: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (bpftrace attaches uprobes)"
command -v bpftrace >/dev/null || die "needs bpftrace (apt-get install bpftrace)"
[ -x "$sim" ] && [ -x "$unit" ] || die "build $build first (cmake --build $build)"
readelf -n "$lib" | grep -q 'Provider: libiopf' ||
	die "$lib has no probes: configure with sys/sdt.h (apt-get install systemtap-sdt-dev)"

# Each probe in both binaries: the shared library and the test build.
at() { echo "usdt:$lib:libiopf:$1, usdt:$unit:libiopf:$1"; }
prog="
BEGIN { printf(\"ready\n\"); }
$(at read) { @fired[\"read\"] = count(); \$r = (int64)arg1;
	if (\$r > 0) { @read_records = hist((uint64)\$r / 40); } else { @read_errno[-\$r] = count(); } }
$(at group_complete) { @fired[\"group_complete\"] = count();
	@group_records = lhist(arg4, 1, 9, 1); }
$(at handler_start) { @fired[\"handler_start\"] = count(); @t[tid] = nsecs; }
$(at handler_end) { @fired[\"handler_end\"] = count();
	if (@t[tid]) { @handler_ns = hist(nsecs - @t[tid]); delete(@t[tid]); }
	@handler_rc[arg4] = count(); }
$(at answer) { @fired[\"answer\"] = count(); @answer_code_why[arg4, arg5] = count(); }
$(at write) { @fired[\"write\"] = count(); @answers_per_write = hist(arg1); }
$(at cancel) { @fired[\"cancel\"] = count();
	printf(\"cancel: dev %u pasid 0x%x prgi %u cookie %u\n\", arg0, arg1, arg2, arg3); }
END { clear(@t); }
"
out=$(mktemp /tmp/trace-demo.XXXXXX)
trap 'rm -f "$out"' EXIT
# bpftrace asks for RLIMIT_MEMLOCK and warns where it may not: harmless
# on kernels that account BPF memory to cgroups (5.11 and later).
bpftrace -e "$prog" >"$out" 2>&1 &
bt=$!
for _ in $(seq 100); do
	grep -q '^ready' "$out" && break
	kill -0 "$bt" 2>/dev/null || { cat "$out"; die "bpftrace failed"; }
	sleep 0.2
done
grep -q '^ready' "$out" || { kill "$bt"; cat "$out"; die "bpftrace did not attach in 20 s"; }

echo "== iopf-sim -d 2 -g 5000 (fd and producer paths)"
"$sim" -d 2 -g 5000 -q | tail -1
echo "== iopf-unit, suite device (groups cancelled by device removal)"
CK_RUN_SUITE=device CK_VERBOSITY=silent "$unit" >/dev/null && echo "device suite passed"
sleep 0.5
kill -INT "$bt"
wait "$bt" || true
# bpftrace's own detach noise without tracefs mounted is left out
grep -v -e 'RLIMIT_MEMLOCK' -e 'uprobe_events' -e 'failed to detach' "$out"
missing=
for p in read group_complete handler_start handler_end answer write cancel; do
	grep -q "^@fired\[$p\]: [1-9]" "$out" || missing+=" $p"
done
[ -z "$missing" ] || die "probes that never fired:$missing"
# answer fires once per group (and for raw INVALID answers, why 0)
fired() { sed -n "s/^@fired\[$1\]: //p" "$out"; }
echo "groups taken in: $(fired group_complete), answers: $(fired answer)"
echo "OK: all 7 probes fired"
