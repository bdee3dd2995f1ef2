#!/bin/bash
# check-probes.sh LIB SDT DOC - the library carries every USDT probe of
# doc/tracing.md (provider libiopf, the documented number of arguments) and
# no other; exit 77 (skipped) when built without sys/sdt.h (SDT not ON).
set -eu
lib=$1 sdt=$2 doc=$3
case "$sdt" in
ON|on|1|TRUE|true) ;;
*) echo "SKIP: built without sys/sdt.h (IOPF_WITH_SDT=OFF, or AUTO without systemtap-sdt-dev): no probes to check"
   exit 77 ;;
esac
# name:arguments, as doc/tracing.md and lib/trace.h give them
want="read:3 group_complete:5 handler_start:4 handler_end:5 answer:6 write:3 cancel:4"
# one line per probe site: provider name nargs
sites=$(readelf -n "$lib" | awk '
	/Provider:/ { p = $2 }
	/Name:/ { n = $2 }
	/Arguments:/ { print p, n, NF - 1 }')
[ -n "$sites" ] || { echo "FAIL: no stapsdt notes in $lib"; exit 1; }
fail=0
for w in $want; do
	name=${w%:*} nargs=${w#*:}
	got=$(awk -v n="$name" '$1 == "libiopf" && $2 == n' <<<"$sites")
	if [ -z "$got" ]; then
		echo "FAIL: probe libiopf:$name missing"; fail=1; continue
	fi
	bad=$(awk -v a="$nargs" '$3 != a' <<<"$got")
	if [ -n "$bad" ]; then
		echo "FAIL: libiopf:$name sites with other than $nargs arguments: $bad"; fail=1
	elif ! grep -q "^### \`$name\`" "$doc"; then
		echo "FAIL: libiopf:$name not documented in $doc"; fail=1
	else
		echo "ok: libiopf:$name, $(wc -l <<<"$got") site(s), $nargs arguments"
	fi
done
extra=$(awk -v w=" $want " '{ if ($1 != "libiopf" || index(w, " " $2 ":") == 0) print }' <<<"$sites")
[ -z "$extra" ] || { echo "FAIL: probes not in the list: $extra"; fail=1; }
[ "$fail" = 0 ] && echo "OK: all $(wc -w <<<"$want") probes of provider libiopf present"
exit $fail
