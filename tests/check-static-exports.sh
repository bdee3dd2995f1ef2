#!/bin/bash
# check-static-exports.sh ARCHIVE MAP - the static library defines no
# global symbol but the public ones the version script names (internals
# are localized when it is built: cmake/localize-static.cmake).
set -euo pipefail
ar=$1 map=$2
want=$(sed -n 's/^[[:space:]]*\(iopf_[a-z_0-9]*\);$/\1/p' "$map" | sort -u)
have=$(nm -g --defined-only "$ar" | awk 'NF == 3 {print $3}' | sort -u)
extra=$(comm -13 <(echo "$want") <(echo "$have"))
[ -z "$extra" ] || { echo "$ar defines non-public global symbols:"; echo "$extra"; exit 1; }
missing=$(comm -23 <(echo "$want") <(echo "$have"))
[ -z "$missing" ] || { echo "$ar lacks public symbols:"; echo "$missing"; exit 1; }
echo "static exports: $(echo "$have" | wc -l) symbols, all public"
