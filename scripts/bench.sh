#!/bin/bash
# bench.sh [--quick] [--json FILE] [BUILD_DIR] - the whole benchmark in one
# command: the host part (fake kernel, producer path, growth, memory,
# latency), libiopf's own instructions per group under callgrind (when
# valgrind is installed), then the real kernel part inside the test VM with
# `vmrun --icount` (guest time counts instructions: figures repeat to ~0.3%).
#
# The full run keeps its output in bench/results/ (host.txt, kernel.txt,
# profile.txt, bench.json) and draws doc/perf-growth.png. --quick (under
# 5 minutes on 2 cores: fewer groups and rounds, growth to 100k outstanding)
# keeps its output in BUILD_DIR/bench-quick/ and leaves the committed
# figures alone. --json FILE also writes the merged figures to FILE.
#
# The JSON: one flat object, one "key": number a line, dotted keys (the
# part first: kernel.*, memory.*, fake.*, producer.*, growth.*, latency.*,
# fairness.*, host.*); doc/performance.md lists the headline keys. Each part writes
# such an object (the kernel part on stdout, lines prefixed "json: ", as
# the VM's file system is read-only) and this script concatenates them.
#
# Environment: JOBS (build parallelism, default nproc), IOPF_TEST_KERNEL
# (kernel image), IOPF_SHARED_KERNEL (folder of vmrun and bzImage; default
# ../shared/kernel beside this checkout or beside its main worktree).
set -euo pipefail
cd "$(dirname "$0")/.."
quick= json= build=build-bench
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) quick=--quick; shift ;;
	--json) json=$2; shift 2 ;;
	-h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	-*) echo "bench.sh: unknown option $1" >&2; exit 2 ;;
	*) build=$1; shift ;;
	esac
done
case "$json" in /*|'') ;; *) json=$PWD/$json ;; esac
t_start=$SECONDS
scripts/install-deps.sh
if [ -z "$quick" ] && ! command -v gnuplot >/dev/null; then
	sudo_=; [ "$(id -u)" -eq 0 ] || sudo_=sudo
	DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends gnuplot-nox >/dev/null
fi
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"${JOBS:-$(nproc)}" --target iopf-bench >/dev/null
bench=$PWD/$build/bench/iopf-bench
case "$build" in /*) bench=$build/bench/iopf-bench ;; esac
if [ -n "$quick" ]; then out=$build/bench-quick; else out=bench/results; fi
mkdir -p "$out"
rm -f "$out/host.json" "$out/kernel.json" "$out/profile.json"
{
	echo "# $(date -u +%F) on $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
	echo "# libiopf $(git describe --always --dirty 2>/dev/null || echo '?'), $(cc --version | head -1)${quick:+, --quick}"
} > "$out/machine.txt"
cat "$out/machine.txt"

# 1. Host part.
dat=$out/growth.dat
"$bench" --host $quick --json "$out/host.json" --dat "$dat" | tee "$out/host.txt"

# 2. libiopf's own instructions per group: (inclusive Ir of iopf_ctx_dispatch
#    - inclusive Ir of the fake kernel's read, write and poll) / N.
#    Six runs: at once over 4 devices (the headline), then with 1 device:
#    at once, deferred and answered by iopf_respond() each, by
#    iopf_respond_many() a round, by iopf_respond_prg() each, by
#    iopf_respond_prg_many() a round.
echo
if command -v valgrind >/dev/null && command -v callgrind_annotate >/dev/null; then
	n=100000
	: > "$out/profile.txt"
	: > "$out/profile.json.parts"
	# profile KEY WHAT ARGS...: one callgrind run, one JSON key
	profile() {
		local key=$1 what=$2 cg=$build/callgrind.bench.$1.out
		shift 2
		if ! valgrind --tool=callgrind --callgrind-out-file="$cg" "$bench" "$@" \
			>> "$out/profile.txt" 2> "$cg.log"; then
			echo "Host, instructions per group: the profiled run failed:"
			cat "$out/profile.txt"; tail -5 "$cg.log"
		fi
		callgrind_annotate --inclusive=yes --threshold=100 "$cg" > "$cg.txt" 2>/dev/null || true
		awk -v n=$n -v key="$key" -v what="$what" -v parts="$out/profile.json.parts" '
			function ir(s) { gsub(",", "", s); return s + 0 }
			/[: ](iopf_ctx_dispatch|iopf_respond|iopf_respond_many|iopf_respond_prg|iopf_respond_prg_many|iopf_ctx_flush) \[/ { d += ir($1) }
			/[: ]fk_sys_(read|write|poll) \[/ { k += ir($1) }
			END {
				if (!d) { print "host: iopf_ctx_dispatch not found in the callgrind profile"; exit 1 }
				ipg = (d - k) / n
				printf "Host, instructions per group (callgrind, %d single-record groups of the fake kernel,\n", n
				printf "  %s): iopf_ctx_dispatch, the answer calls, iopf_ctx_flush %d Ir\n", what, d
				printf "  - fake kernel read/write/poll %d Ir = %.0f instructions per group of libiopf'"'"'s own work\n", k, ipg
				printf "  \"%s\": %.1f\n", key, ipg >> parts
			}' "$cg.txt" | tee -a "$out/profile.txt" || true
	}
	profile host.instructions_per_group "answered at once, 4 devices in turn" \
		--profile-once $n
	profile host.instructions_per_group_1dev "answered at once, 1 device (the shape of the kernel bench)" \
		--profile-once $n --devices 1
	profile host.instructions_per_group_defer_1dev "deferred, iopf_respond() each, 1 device" \
		--profile-defer $n --devices 1
	profile host.instructions_per_group_many_1dev "deferred, iopf_respond_many() a round, 1 device" \
		--profile-many $n --devices 1
	profile host.instructions_per_group_prg_1dev "deferred, iopf_respond_prg() each, 1 device" \
		--profile-prg $n --devices 1
	profile host.instructions_per_group_prg_many_1dev "deferred, iopf_respond_prg_many() a round, 1 device" \
		--profile-prg-many $n --devices 1
	{ echo "{"; sed '$!s/$/,/' "$out/profile.json.parts"; echo "}"; } > "$out/profile.json"
	rm -f "$out/profile.json.parts"
else
	echo "Host, instructions per group: skipped (valgrind not installed)" | tee "$out/profile.txt"
fi

# 3. Real kernel part, in the VM, guest time counting instructions.
echo
shared=${IOPF_SHARED_KERNEL:-}
if [ -z "$shared" ]; then
	common=$(git rev-parse --path-format=absolute --git-common-dir 2>/dev/null || true)
	for d in ../shared/kernel ${common:+"$(dirname "$common")/../shared/kernel"}; do
		[ -x "$d/vmrun" ] && { shared=$(cd "$d" && pwd); break; }
	done
fi
kernel=${IOPF_TEST_KERNEL:-}
[ -n "$kernel" ] || for k in ${shared:+"$shared/bzImage"} build/test-kernel/bzImage; do
	[ -r "$k" ] && { kernel=$k; break; }
done
kargs=(--kernel --json -)
[ -z "$quick" ] || kargs+=(--quick)
set +e
if [ -n "$shared" ] && [ -n "$kernel" ] && command -v qemu-system-x86_64 >/dev/null; then
	echo "# kernel part: $shared/vmrun --icount --kernel $kernel" > "$out/kernel.raw"
	"$shared/vmrun" --icount --kernel "$kernel" --timeout "${IOPF_VM_TIMEOUT:-1800}" \
		-- "$bench" "${kargs[@]}" >> "$out/kernel.raw" 2>&1
	rc=$?
else
	echo "# kernel part: WITHOUT --icount (no ../shared/kernel/vmrun): figures are noisy" > "$out/kernel.raw"
	tests/kernel/run-in-vm.sh "$bench" "${kargs[@]}" >> "$out/kernel.raw" 2>&1
	rc=$?
fi
set -e
grep -v '^json: ' "$out/kernel.raw" | tee "$out/kernel.txt"
sed -n 's/^json: //p' "$out/kernel.raw" > "$out/kernel.json"
rm -f "$out/kernel.raw"
[ "$rc" -eq 0 ] || echo "(kernel part: exit $rc)"

# 4. One JSON object: the parts' lines concatenated (a key a line).
files=()
for f in kernel host profile; do
	[ -s "$out/$f.json" ] && files+=("$out/$f.json")
done
awk '/^ *"/ { sub(/,[ \t]*$/, ""); l[n++] = $0 }
     END { print "{"; for (i = 0; i < n; i++) print l[i] (i + 1 < n ? "," : ""); print "}" }' \
	"${files[@]}" > "$out/bench.json"
if command -v python3 >/dev/null; then
	python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$out/bench.json"
fi
# the same file named twice (e.g. --json bench/results/bench.json): nothing to copy
[ -z "$json" ] || [ "$out/bench.json" -ef "$json" ] || cp "$out/bench.json" "$json"
echo
echo "JSON: $out/bench.json${json:+ and $json} ($(grep -c '^ *"' "$out/bench.json") keys)"
if [ -z "$quick" ]; then
	gnuplot -e "dat='$dat'; png='doc/perf-growth.png'" bench/growth.gp
	echo "plot: doc/perf-growth.png"
fi
echo "bench.sh: $((SECONDS - t_start)) s"
