#!/bin/bash
# sdt-cost.sh [N] - what the USDT probes cost while nobody attaches:
# libiopf's own instructions per group (callgrind, as scripts/bench.sh
# counts them: inclusive Ir of iopf_ctx_dispatch less the fake kernel's
# read, write and poll, over N single-record groups answered at once,
# default 100000) in a Release build with the probes (IOPF_WITH_SDT=ON)
# and one without (OFF). Builds in build-sdt-ON/ and build-sdt-OFF/.
# Needs valgrind and sys/sdt.h (systemtap-sdt-dev). About 2 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
command -v valgrind >/dev/null && command -v callgrind_annotate >/dev/null ||
	{ echo "sdt-cost: needs valgrind" >&2; exit 1; }
declare -A ipg
for m in ON OFF; do
	b=build-sdt-$m
	cmake -S . -B "$b" -DCMAKE_BUILD_TYPE=Release -DIOPF_WITH_SDT=$m >/dev/null
	cmake --build "$b" -j"${JOBS:-$(nproc)}" --target iopf-bench >/dev/null
	sites=$(readelf -n "$b/bench/iopf-bench" | grep -c 'Provider: libiopf' || true)
	valgrind --tool=callgrind --callgrind-out-file="$b/callgrind.sdt.out" \
		"$b/bench/iopf-bench" --profile-once "$n" >/dev/null 2>"$b/callgrind.sdt.log"
	callgrind_annotate --inclusive=yes --threshold=100 "$b/callgrind.sdt.out" \
		> "$b/callgrind.sdt.txt" 2>/dev/null || true
	ipg[$m]=$(awk -v n="$n" '
		function ir(s) { gsub(",", "", s); return s + 0 }
		/[: ]iopf_ctx_dispatch \[/ { d += ir($1) }
		/[: ]fk_sys_(read|write|poll) \[/ { k += ir($1) }
		END { if (!d) exit 1; printf "%.1f", (d - k) / n }' "$b/callgrind.sdt.txt")
	printf 'IOPF_WITH_SDT=%-3s  %3d probe sites  %6s instructions per group\n' \
		"$m" "$sites" "${ipg[$m]}"
done
awk -v on="${ipg[ON]}" -v off="${ipg[OFF]}" 'BEGIN {
	printf "probes compiled in, not attached: %+.1f instructions per group (%+.1f%%)\n",
		on - off, (on - off) * 100 / off }'
