#!/bin/sh
# gen-symbols.sh - write debian/libiopf1.symbols from lib/libiopf.map.
# Each symbol gets the version its node was introduced in:
# LIBIOPF_X.Y -> X.Y.0 (a node is sealed once released, NEWS.md).
#   debian/gen-symbols.sh           print the symbols file
#   debian/gen-symbols.sh --write   rewrite debian/libiopf1.symbols
#   debian/gen-symbols.sh --check   fail if debian/libiopf1.symbols is stale
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
map=$top/lib/libiopf.map
out=$top/debian/libiopf1.symbols

gen() {
	echo "libiopf.so.1 libiopf1 #MINVER#"
	echo "* Build-Depends-Package: libiopf-dev"
	# Strip comments, then walk the nodes: "NAME {" opens one, "global:"
	# and "local:" switch sections, "}" closes it.
	sed -e 's,/\*.*\*/,,' -e '/\/\*/,/\*\//d' "$map" | awk '
	/^[[:space:]]*LIBIOPF_[0-9]+\.[0-9]+[[:space:]]*\{/ {
		node = $1; sub(/\{.*/, "", node)
		ver = node; sub(/^LIBIOPF_/, "", ver); ver = ver ".0"
		print " " node "@" node " " ver
		glob = 0; next
	}
	/global:/ { glob = 1; next }
	/local:/ { glob = 0; next }
	/\}/ { node = ""; next }
	node != "" && glob && /^[[:space:]]*[A-Za-z_][A-Za-z0-9_]*;/ {
		s = $1; sub(/;.*/, "", s)
		print " " s "@" node " " ver
	}' | LC_ALL=C sort
}

case "${1:-}" in
"") gen ;;
--write) gen > "$out" ;;
--check)
	if ! gen | cmp -s - "$out"; then
		echo "debian/libiopf1.symbols is stale: run debian/gen-symbols.sh --write" >&2
		gen | diff -u "$out" - >&2 || true
		exit 1
	fi ;;
*) echo "usage: $0 [--write|--check]" >&2; exit 2 ;;
esac
