#!/bin/bash
# bench.sh [BUILD_DIR] - the whole benchmark in one command: the host part
# (fake kernel, producer path, growth, memory, latency), then the real
# kernel part inside the test VM; prints every table and keeps the results
# in bench/results/ and the growth plot in doc/perf-growth.png.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-bench}
scripts/install-deps.sh
if ! command -v gnuplot >/dev/null; then
	sudo_=; [ "$(id -u)" -eq 0 ] || sudo_=sudo
	DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends gnuplot-nox >/dev/null
fi
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" --target iopf-bench >/dev/null
out=bench/results
mkdir -p "$out"
{
	echo "# $(date -u +%F) on $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
	echo "# libiopf $(git describe --always --dirty 2>/dev/null || echo '?'), $(cc --version | head -1)"
} > "$out/machine.txt"
cat "$out/machine.txt"
"$build/bench/iopf-bench" --host --json "$out/host.json" --dat "$out/growth.dat" | tee "$out/host.txt"
echo
set +e
tests/kernel/run-in-vm.sh "$build/bench/iopf-bench" --kernel 2>&1 | tee "$out/kernel.txt"
rc=${PIPESTATUS[0]}
set -e
[ "$rc" -eq 0 ] || echo "(kernel part: exit $rc)"
gnuplot -e "dat='$out/growth.dat'; png='doc/perf-growth.png'" bench/growth.gp
echo "plot: doc/perf-growth.png"
