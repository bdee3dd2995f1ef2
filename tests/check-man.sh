#!/bin/sh
# check-man.sh LIBIOPF_SO MANDIR [MAPFILE] - every symbol the shared library
# exports (and every one its version script names) has a page
# MANDIR/man3/<symbol>.3, and every page passes `mandoc -Tlint -Wwarning`.
# Exit 77 (skipped) without mandoc.
#
# The one message ignored: mandoc warns "WARNING: .so is fragile, better use
# ln(1)" on every link page (iopf_ctx_free.3 is `.so man3/iopf_ctx_new.3`,
# as liburing and the man-pages project do). It cannot be avoided in a
# .so page; the check below makes sure each link page is that single line
# and its target exists instead.
set -u
so=$1 mandir=$2 map=${3-}
command -v mandoc >/dev/null 2>&1 || { echo "check-man: no mandoc, skipped"; exit 77; }
command -v nm >/dev/null 2>&1 || { echo "check-man: no nm"; exit 1; }
[ -f "$so" ] || { echo "check-man: $so: no such file"; exit 1; }
fail=0

syms=$(nm -D --defined-only "$so" | awk 'NF >= 3 && $2 != "A" { sub(/@.*/, "", $3); print $3 }')
if [ -n "$map" ]; then
	syms="$syms
$(sed -n 's/^[[:space:]]*\(iopf_[A-Za-z0-9_]*\);.*/\1/p' "$map")"
fi
syms=$(printf '%s\n' "$syms" | sort -u | grep -v '^$')
[ -n "$syms" ] || { echo "check-man: no symbols found in $so"; exit 1; }
n=0
for s in $syms; do
	n=$((n + 1))
	if [ ! -f "$mandir/man3/$s.3" ]; then
		echo "check-man: $s: no man page man3/$s.3"
		fail=1
	fi
done

pages=0
cd "$mandir" || exit 1
for p in man1/*.1 man3/*.3 man7/*.7; do
	[ -f "$p" ] || continue
	pages=$((pages + 1))
	if grep -q '^\.so ' "$p"; then
		target=$(sed -n 's/^\.so //p' "$p")
		if [ "$(wc -l < "$p")" -ne 1 ] || [ ! -f "$target" ]; then
			echo "check-man: $p: a link page must be one line, .so to an existing page"
			fail=1
		fi
	fi
	out=$(mandoc -Tlint -Wwarning "$p" 2>&1 | grep -v 'WARNING: \.so is fragile, better use ln(1)')
	if [ -n "$out" ]; then
		printf '%s\n' "$out"
		fail=1
	fi
done
echo "check-man: $n exported symbols, $pages pages checked"
[ "$fail" -eq 0 ] && echo "check-man: OK"
exit "$fail"
