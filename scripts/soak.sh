#!/bin/bash
# soak.sh - run the model-based exactly-once test (tests/model/model.c) with
# successive seeds until a number of groups or minutes is reached, or a seed
# fails. Builds iopf-model first if needed.
#
#   scripts/soak.sh [--groups N | --minutes M] [--build DIR] [--seed S]
#                   [--per-run N]
#
#   --groups N   stop after N groups in all (default 1000000; the last of
#                --groups and --minutes given counts)
#   --minutes M  stop after M minutes instead
#   --build DIR  build directory (default: build); configured RelWithDebInfo
#                if it does not exist yet
#   --seed S     first seed (default: from the clock); then S+1, S+2, ...
#   --per-run N  groups per run of iopf-model (default 50000)
#
# Prints the groups done so far after each run and, on a failure, the seed
# and the failing run's output; exits 1 then (2 on usage errors). Reproduce a
# failure with: DIR/tests/model/iopf-model --seed S --groups N --verbose
set -euo pipefail
cd "$(dirname "$0")/.."

goal_groups=1000000
minutes=""
build=build
seed=""
per_run=50000

usage() {
	sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
	exit "${1:-2}"
}

while [ $# -gt 0 ]; do
	case "$1" in
	--groups) goal_groups="${2:?}"; minutes=""; shift 2 ;;
	--minutes) minutes="${2:?}"; shift 2 ;;
	--build) build="${2:?}"; shift 2 ;;
	--seed) seed="${2:?}"; shift 2 ;;
	--per-run) per_run="${2:?}"; shift 2 ;;
	-h|--help) usage 0 ;;
	*) usage 2 ;;
	esac
done
for v in "$goal_groups" "$per_run" ${minutes:+"$minutes"} ${seed:+"$seed"}; do
	[[ "$v" =~ ^[0-9]+$ ]] || usage 2
done
[ -n "$seed" ] || seed=$(( $(date +%s) % 1000000000 ))

model="$build/tests/model/iopf-model"
if [ ! -x "$model" ]; then
	echo "soak: building $model"
	[ -f "$build/CMakeCache.txt" ] ||
		cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build "$build" -j1 --target iopf-model >/dev/null
fi

start=$(date +%s)
deadline=""
[ -n "$minutes" ] && deadline=$(( start + minutes * 60 ))
done_groups=0
runs=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

while :; do
	if [ -n "$deadline" ]; then
		[ "$(date +%s)" -lt "$deadline" ] || break
	else
		[ "$done_groups" -lt "$goal_groups" ] || break
	fi
	n=$per_run
	if [ -z "$deadline" ] && [ $(( goal_groups - done_groups )) -lt "$n" ]; then
		n=$(( goal_groups - done_groups ))
	fi
	if ! "$model" --seed "$seed" --groups "$n" >"$log" 2>&1; then
		echo "soak: FAIL at seed $seed after $done_groups groups in $runs runs"
		tail -n 40 "$log"
		echo "soak: reproduce: $model --seed $seed --groups $n --verbose"
		exit 1
	fi
	got=$(sed -n 's/^model: seed [0-9]*: \([0-9]*\) groups, exactly once$/\1/p' "$log")
	if [ -z "$got" ]; then
		echo "soak: FAIL at seed $seed: no summary line"
		tail -n 40 "$log"
		exit 1
	fi
	done_groups=$(( done_groups + got ))
	runs=$(( runs + 1 ))
	echo "soak: seed $seed ok: $done_groups groups in $runs runs, $(( $(date +%s) - start )) s"
	seed=$(( seed + 1 ))
done
echo "soak: $done_groups groups in $runs runs (seeds up to $(( seed - 1 ))), exactly once"
