#!/bin/bash
# fuzz.sh - build the libFuzzer harnesses (tests/fuzz, clang, ASan+UBSan)
# in build-fuzz/ and run them.
#
#   scripts/fuzz.sh [--smoke] [TARGET] [SECONDS]
#
# TARGET: records, producer, uevent, api (or fuzz-records, ...); default all,
# one after the other. SECONDS: fuzzing time per target (default 60).
# --smoke: each target over its seed corpus, then 30 s of new inputs.
# --merge-crashes: minimize every input kept in build-fuzz/crashes/<target>/
# and add it to tests/fuzz/corpus/<target>/ as crash-<hash>: a corpus file
# and a ctest test of its own (fuzz.<target>.crash-<hash>). Commit it with
# the fix.
# Each run works on a copy of tests/fuzz/corpus/<target> in a temporary
# directory: the committed corpus is never written. Crash inputs are kept
# in build-fuzz/crashes/<target>/ (see tests/fuzz/README.md to turn one into
# a regression seed). Prints execs, coverage and the result per target;
# exits 1 if any target crashed or failed an oracle.
#
# Environment: IOPF_FUZZ_ALLOW (skip known oracle classes, for triage; see
# tests/fuzz/fuzz_util.h), FUZZ_ARGS (more libFuzzer flags), CC (clang).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=$ROOT/build-fuzz
TARGETS_ALL="records producer uevent api"

smoke=0
merge=0
targets=""
secs=60
while [ $# -gt 0 ]; do
	case "$1" in
	--smoke) smoke=1 ;;
	--merge-crashes) merge=1 ;;
	-h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	[0-9]*) secs=$1 ;;
	fuzz-*) targets="$targets ${1#fuzz-}" ;;
	records|producer|uevent|api) targets="$targets $1" ;;
	*) echo "fuzz.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
	esac
	shift
done
[ -n "$targets" ] || targets=$TARGETS_ALL
[ "$smoke" = 1 ] && secs=30

# ---- configure and build (once; then incremental) ----
if ! grep -qs '^IOPF_FUZZ:BOOL=ON' "$BUILD/CMakeCache.txt"; then
	CC=${CC:-clang} cmake -S "$ROOT" -B "$BUILD" -DIOPF_FUZZ=ON -DIOPF_SANITIZE=ON \
		-DCMAKE_BUILD_TYPE=RelWithDebInfo -DIOPF_BUILD_EXAMPLES=OFF \
		-DIOPF_BUILD_BENCH=OFF >/dev/null
fi
build_targets=""
for t in $targets; do build_targets="$build_targets --target fuzz-$t"; done
# shellcheck disable=SC2086
cmake --build "$BUILD" -j1 $build_targets >/dev/null

WORK=$(mktemp -d "${TMPDIR:-/tmp}/iopf-fuzz.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# ---- crashes into the corpus (regression seeds) ----
if [ "$merge" = 1 ]; then
	n=0
	for t in $targets; do
		for c in "$BUILD/crashes/$t"/crash-* "$BUILD/crashes/$t"/leak-* \
			 "$BUILD/crashes/$t"/timeout-* "$BUILD/crashes/$t"/oom-*; do
			[ -f "$c" ] || continue
			min=$WORK/min
			rm -f "$min"
			"$BUILD/tests/fuzz/fuzz-$t" -minimize_crash=1 -max_total_time=20 \
				-exact_artifact_path="$min" "$c" >/dev/null 2>&1 || true
			[ -s "$min" ] || cp "$c" "$min"
			name=crash-$(sha1sum "$min" | cut -c1-12)
			cp "$min" "$ROOT/tests/fuzz/corpus/$t/$name"
			echo "$t: $(basename "$c") ($(stat -c %s "$c") bytes) -> tests/fuzz/corpus/$t/$name ($(stat -c %s "$min") bytes)"
			n=$((n + 1))
		done
	done
	echo "$n merged; rerun cmake on build-fuzz for their ctest tests"
	exit 0
fi

# ---- run ----
# Library logs and leak reports off the console; the harnesses abort() on
# an oracle failure, so libFuzzer keeps the input.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=0
summary=""
for t in $targets; do
	bin=$BUILD/tests/fuzz/fuzz-$t
	w=$WORK/$t
	mkdir -p "$w/corpus" "$w/artifacts"
	cp "$ROOT/tests/fuzz/corpus/$t/"* "$w/corpus/" 2>/dev/null || true
	result=ok
	if [ "$smoke" = 1 ]; then
		# the seeds (and kept crash reproducers) must all pass as they are
		if ! "$bin" -runs=0 -artifact_prefix="$w/artifacts/" "$w/corpus" \
			>"$w/corpus.log" 2>&1; then
			result="FAIL on its corpus: $(grep -m1 -E 'ORACLE FAILURE|SUMMARY' "$w/corpus.log" || tail -1 "$w/corpus.log")"
		fi
	fi
	set +e
	# shellcheck disable=SC2086
	"$bin" -max_total_time="$secs" -timeout=10 -max_len=4096 -print_final_stats=1 \
		-artifact_prefix="$w/artifacts/" ${FUZZ_ARGS:-} "$w/corpus" >"$w/log" 2>&1
	rc=$?
	set -e
	execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$w/log" | grep -o '[0-9]*$' || echo "?")
	cov=$(grep -o 'cov: [0-9]*' "$w/log" | tail -1 | grep -o '[0-9]*$' || echo "?")
	if [ $rc -ne 0 ]; then
		what=$(grep -m1 -E 'ORACLE FAILURE|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error' "$w/log" || echo "exit $rc")
		case "$what" in
		ORACLE*) what="oracle: ${what#*: }" ;;
		*ERROR:*) what=$(echo "${what#*ERROR: }" | sed 's/ on address.*//; s/ on unknown address.*/ (null or wild address)/') ;;
		esac
		mkdir -p "$BUILD/crashes/$t"
		cp "$w/artifacts/"* "$BUILD/crashes/$t/" 2>/dev/null || true
		cp "$w/log" "$BUILD/crashes/$t/last.log"
		art=$(ls -t "$w/artifacts/" 2>/dev/null | head -1)
		result="CRASH: $what -> build-fuzz/crashes/$t/${art:-?}"
	fi
	case "$result" in ok) ;; *) failed=1 ;; esac
	line=$(printf '%-9s %4ss  execs %-9s cov %-5s %s' "$t" "$secs" "$execs" "$cov" "$result")
	echo "$line"
	summary="$summary$line"$'\n'
done
if [ $failed -ne 0 ]; then
	echo "fuzz.sh: failures (reproduce: build-fuzz/tests/fuzz/fuzz-TARGET FILE; IOPF_FUZZ_TRACE=1 shows the script)" >&2
	exit 1
fi
