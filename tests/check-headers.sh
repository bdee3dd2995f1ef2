#!/bin/bash
# check-headers.sh [SRC_DIR] - compile (-c only) tests/headers against
# include/iopf/iopf.h with strict flags: ISO C99 with gcc and clang, GNU C11,
# ISO C++11 with g++ and clang++. A missing compiler is skipped and said;
# with none at all the test is skipped (77).
set -uo pipefail
src=${1:-$(cd "$(dirname "$0")/.." && pwd)}
hdr=$src/tests/headers
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
warn=(-Wall -Wextra -Werror)
fail=0 ran=0
check() { # compiler file flags...
	local cc=$1 f=$2; shift 2
	if ! command -v "$cc" >/dev/null; then
		echo "SKIP $cc $*: $cc not found"
		return
	fi
	ran=$((ran + 1))
	if "$cc" -I"$src/include" "$@" -c "$hdr/$f" -o "$tmp/out.o"; then
		echo "ok   $cc $* $f"
	else
		echo "FAIL $cc $* $f"
		fail=1
	fi
}
check gcc strict.c -std=c99 -pedantic-errors "${warn[@]}"
check clang strict.c -std=c99 -pedantic-errors "${warn[@]}"
check gcc strict.c -std=gnu11 "${warn[@]}"
check g++ cxx.cpp -std=c++11 -pedantic-errors "${warn[@]}"
check clang++ cxx.cpp -std=c++11 -pedantic-errors
[ "$ran" -gt 0 ] || { echo "no compiler found"; exit 77; }
[ "$fail" -eq 0 ] && echo "OK: iopf.h compiles strictly"
exit $fail
