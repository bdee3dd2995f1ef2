#!/bin/bash
# soak.sh [--groups N | --minutes M] [--build DIR] - run the randomized
# exactly-once model (tests/model) with successive seeds until N groups
# (default 10,000,000) or M minutes have passed. Prints the groups done;
# on a failure, the seed and the model's reason, and exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."
goal=10000000 minutes=0 build=build seed=${IOPF_SOAK_SEED:-1000}
while [ $# -gt 0 ]; do
	case $1 in
	--groups) goal=$2; shift 2 ;;
	--minutes) minutes=$2; goal=0; shift 2 ;;
	--build) build=$2; shift 2 ;;
	*) echo "usage: $0 [--groups N | --minutes M] [--build DIR]" >&2; exit 2 ;;
	esac
done
if [ ! -x "$build/tests/model/iopf-model" ]; then
	cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build "$build" -j"$(nproc)" --target iopf-model >/dev/null
fi
model=$build/tests/model/iopf-model
end=$(( $(date +%s) + minutes * 60 ))
total=0 runs=0
while :; do
	if [ "$goal" -gt 0 ] && [ "$total" -ge "$goal" ]; then break; fi
	if [ "$goal" -eq 0 ] && [ "$(date +%s)" -ge "$end" ]; then break; fi
	if ! out=$("$model" --seed "$seed" --groups 200000 2>&1); then
		echo "soak: FAILED at seed $seed after $total groups:"
		echo "$out" | tail -5
		exit 1
	fi
	n=$(sed -n 's/.*: \([0-9]*\) groups.*/\1/p' <<<"$out" | tail -1)
	total=$((total + ${n:-0})) runs=$((runs + 1)) seed=$((seed + 1))
done
echo "soak: $total groups in $runs runs (seeds from ${IOPF_SOAK_SEED:-1000}), exactly once"
