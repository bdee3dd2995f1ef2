#!/bin/bash
# test.sh - install what is needed, build, and run every test:
#  1. RelWithDebInfo (gcc): the unit suites, the exactly-once regression
#     suite, the randomized model, the stress test, the allocation-failure
#     sweep, the examples, the install/consumer build, the ABI checks
#     and the kernel suites in a VM (skipped with a reason when no kernel
#     image or qemu; CI=true makes that skip a failure);
#  2. AddressSanitizer + UBSan: the same host tests (the sweep's leak check
#     needs LeakSanitizer);
#  3. ThreadSanitizer: the unit suites, the stress test and the model;
#  4. clang without libnl-3 (-DIOPF_WITH_LIBNL=OFF); warnings are errors on
#     both compilers;
#  5. the fuzz harnesses (clang, libFuzzer, ASan+UBSan): each over its
#     corpus, then 30 s of new input (scripts/fuzz.sh --smoke);
#  6. the Debian packages: built, linted, unpacked, a consumer built and
#     run against them (tests/debian-check.sh);
#  7. the Rust bindings: cargo test and the vmm_forward example against
#     libiopf installed from build/, offline (tests/rust-check.sh);
#  8. the docs, with zero Doxygen warnings.
# Ends with one line per tool.
set -euo pipefail
cd "$(dirname "$0")/.."
summary=()
stage() { summary+=("$(printf '%-34s %s' "$1" "$2")"); }
scripts/install-deps.sh

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
(cd build && ctest --output-on-failure) | tee build/ctest.log
stage "unit, model, stress, sweep, kernel" "$(tail -n 20 build/ctest.log | grep -m1 'tests passed')"
grep -q "SKIP:" build/ctest.log && stage "  skipped" "$(grep -m1 'SKIP:' build/ctest.log)"

cmake -S . -B build-asan -DIOPF_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-asan -j"$(nproc)"
(cd build-asan && ctest --output-on-failure -LE kernel -E install.consumer) | tee build-asan/ctest.log
stage "ASan+UBSan (host tests)" "$(grep -m1 'tests passed' build-asan/ctest.log)"

cmake -S . -B build-tsan -DIOPF_SANITIZE=thread -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-tsan -j"$(nproc)"
(cd build-tsan && ctest --output-on-failure -R '^(unit\.|stress\.|model\.)') | tee build-tsan/ctest.log
stage "ThreadSanitizer (unit, stress, model)" "$(grep -m1 'tests passed' build-tsan/ctest.log)"

CC=clang cmake -S . -B build-clang -DCMAKE_BUILD_TYPE=Debug -DIOPF_WITH_LIBNL=OFF >/dev/null
cmake --build build-clang -j"$(nproc)"
(cd build-clang && ctest --output-on-failure -LE kernel -E install.consumer) | tee build-clang/ctest.log
stage "clang, no libnl-3" "$(grep -m1 'tests passed' build-clang/ctest.log)"

scripts/fuzz.sh --smoke | tee build/fuzz.log
stage "fuzz smoke (4 targets)" "$(grep -c ' ok$' build/fuzz.log) of 4 targets ok"

tests/debian-check.sh | tee build/debian.log
stage "Debian packages" "built, lintian clean, consumer ran"

tests/rust-check.sh build | tee build/rust.log
stage "Rust bindings" "$(grep -m1 '^OK: Rust bindings' build/rust.log | sed 's/^OK: Rust bindings: //')"

cmake --build build --target doc
stage "docs" "Doxygen, no warnings"

printf '\n'
printf '%s\n' "${summary[@]}"
echo "all tests passed"
