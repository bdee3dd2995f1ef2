#!/bin/bash
# check-abi.sh BUILT_SO - the built library against the released ABI
# (abi/libiopf.so.1.abi): nothing removed or changed, additions are fine.
# Exit 77 (skipped) without abidiff or without debug info in BUILT_SO.
set -u
so=$1
src=$(cd "$(dirname "$0")/.." && pwd)
base=$src/abi/libiopf.so.1.abi
suppr=$src/abi/suppressions.abignore
command -v abidiff >/dev/null || { echo "SKIP: abidiff not found (apt-get install abigail-tools)"; exit 77; }
readelf -S "$so" | grep -q '\.debug_info' || { echo "SKIP: $so has no DWARF (build RelWithDebInfo or Debug)"; exit 77; }
args=(--headers-dir2 "$src/include/iopf" --suppressions "$suppr" "$base" "$so")
# The verdict ignores added symbols; abidiff's status bits: 1 error,
# 2 usage, 4 ABI change, 8 incompatible change.
out=$(abidiff --no-added-syms "${args[@]}" 2>&1)
rc=$?
if [ $rc -ne 0 ]; then
	printf '%s\n' "$out"
	[ $((rc & 8)) -ne 0 ] && echo "FAIL: incompatible ABI change against $base"
	[ $((rc & 3)) -ne 0 ] && echo "FAIL: abidiff error (status $rc)"
	[ $rc -eq 4 ] && echo "FAIL: ABI change against $base (not an addition; see abi/README.md)"
	exit 1
fi
added=$(abidiff "${args[@]}" 2>&1 | grep -E '^  \[A\]' || true)
if [ -n "$added" ]; then
	echo "additions (fine; regenerate the baseline with the release, abi/README.md):"
	printf '%s\n' "$added"
fi
echo "ABI: compatible with $(basename "$base")"
