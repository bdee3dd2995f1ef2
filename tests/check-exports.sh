#!/bin/bash
# check-exports.sh LIB MAP [SONAME] - the shared library exports exactly
# the symbols the version script names, each with a version, and has its
# SONAME (default libiopf.so.1; libiopf-glib passes its own).
set -eu
lib=$1 map=$2 soname=${3:-libiopf.so.1}
want=$(sed -n 's/^[[:space:]]*\(iopf_[a-z_0-9]*\);$/\1/p' "$map" | sort)
have=$(nm -D --defined-only "$lib" | awk '$2 == "T" || $2 == "D" || $2 == "B" {print $3}' | sort)
unversioned=$(printf '%s\n' "$have" | grep -v '@' || true)
[ -z "$unversioned" ] || { echo "unversioned exports: $unversioned"; exit 1; }
names=$(printf '%s\n' "$have" | sed 's/@.*//' | sort)
[ "$names" = "$want" ] || { echo "exports differ from $map:"; diff <(echo "$want") <(echo "$names") || true; exit 1; }
objdump -p "$lib" | grep -q "SONAME *$soname\$" || { echo "no SONAME $soname"; exit 1; }
echo "exports: $(printf '%s\n' "$names" | wc -l) symbols, all versioned; SONAME $soname"
