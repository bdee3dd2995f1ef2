#!/bin/bash
# test.sh - install what is needed, build, and run every test: the unit
# suites, the examples, the install/consumer build, the ABI check and the
# kernel suites in a VM (skipped with a reason when no kernel image or qemu;
# CI=true makes that skip a failure). Then the unit suites again under
# AddressSanitizer + UBSan (with the allocation-failure sweep, whose leak
# check needs LeakSanitizer), the unit suites and the stress test under
# ThreadSanitizer, again built by clang without libnl-3
# (-DIOPF_WITH_LIBNL=OFF; warnings are errors on both compilers), and the
# docs with zero Doxygen warnings.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
(cd build && ctest --output-on-failure)
cmake -S . -B build-asan -DIOPF_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-asan -j"$(nproc)"
(cd build-asan && ctest --output-on-failure -LE kernel -E install.consumer)
cmake -S . -B build-tsan -DIOPF_SANITIZE=thread -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-tsan -j"$(nproc)"
(cd build-tsan && ctest --output-on-failure -R '^(unit\.|stress\.|model\.)')
CC=clang cmake -S . -B build-clang -DCMAKE_BUILD_TYPE=Debug -DIOPF_WITH_LIBNL=OFF >/dev/null
cmake --build build-clang -j"$(nproc)"
(cd build-clang && ctest --output-on-failure -LE kernel -E install.consumer)
cmake --build build --target doc
echo "all tests passed"
