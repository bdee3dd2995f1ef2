#!/bin/bash
# rust-check.sh - build and test the Rust bindings (bindings/rust) against
# libiopf installed from a build dir into a temporary prefix, offline,
# with Debian 12's Rust toolchain and packaged crates (scripts/install-deps.sh):
# bindgen reads the installed header found by pkg-config.
#
#   tests/rust-check.sh [BUILD_DIR]     default: build
#
# Runs `cargo test` (unit, integration and doc tests, compile_fail ones
# included) and the vmm_forward example; cargo's target dir is
# BUILD_DIR/rust-target (one debug build serves both). Not part of ctest.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$top/build}" && pwd)
tmp=$(mktemp -d /tmp/libiopf-rust.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# Debian's toolchain (Rust 1.63), not a rustup one earlier in PATH: the
# packaged crates are pinned for it.
export PATH=/usr/bin:$PATH
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
cargo=/usr/bin/cargo
[ -x "$cargo" ] || { echo "FAIL: no /usr/bin/cargo (scripts/install-deps.sh)"; exit 1; }

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
pc=$(dirname "$(find "$tmp/prefix" -name libiopf.pc | head -n1)")
export PKG_CONFIG_PATH=$pc
export LD_LIBRARY_PATH=$tmp/prefix/lib:$(dirname "$pc")
export CARGO_TARGET_DIR=$build/rust-target
export RUSTFLAGS="-D warnings" # as for C: warnings are errors
echo "libiopf $(pkg-config --modversion libiopf) from $tmp/prefix; $("$cargo" --version); $(rustc --version)"

# .cargo/config.toml there points crates-io at /usr/share/cargo/registry.
cd "$top/bindings/rust"
"$cargo" test --offline -j"$(nproc)" 2>&1 | tee "$tmp/test.log"
passed=$(awk '/^test result: ok\./ { n += $4 } END { print n + 0 }' "$tmp/test.log")
"$cargo" run --offline --example vmm_forward -- --groups 20000 --workers 2
echo "OK: Rust bindings: $passed tests passed, vmm_forward ran"
