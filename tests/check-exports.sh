#!/bin/bash
# check-exports.sh LIB MAP - the shared library exports exactly the symbols
# the version script names, each with a version, and has its SONAME.
set -eu
lib=$1 map=$2
want=$(sed -n 's/^[[:space:]]*\(iopf_[a-z_0-9]*\);$/\1/p' "$map" | sort)
have=$(nm -D --defined-only "$lib" | awk '$2 == "T" || $2 == "D" || $2 == "B" {print $3}' | sort)
unversioned=$(printf '%s\n' "$have" | grep -v '@' || true)
[ -z "$unversioned" ] || { echo "unversioned exports: $unversioned"; exit 1; }
names=$(printf '%s\n' "$have" | sed 's/@.*//' | sort)
[ "$names" = "$want" ] || { echo "exports differ from $map:"; diff <(echo "$want") <(echo "$names") || true; exit 1; }
objdump -p "$lib" | grep -q 'SONAME *libiopf.so.1' || { echo "no SONAME libiopf.so.1"; exit 1; }
echo "exports: $(printf '%s\n' "$names" | wc -l) symbols, all versioned; SONAME libiopf.so.1"
