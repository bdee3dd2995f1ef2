#!/bin/bash
# install-deps.sh - the Debian 12 packages libiopf needs to build, test and
# document itself, and qemu for the kernel tests (systemtap-sdt-dev: the
# USDT probes' sys/sdt.h, doc/tracing.md).
set -euo pipefail
pkgs=(build-essential cmake pkg-config check libnl-3-dev doxygen mandoc
      qemu-system-x86 clang libfuzzer-14-dev libclang-rt-14-dev
      abigail-tools debhelper dpkg-dev lintian systemtap-sdt-dev
      # the optional GLib adapter (glib/)
      libglib2.0-dev
      # Rust bindings (tests/rust-check.sh): Debian's toolchain and crates,
      # libclang for bindgen
      cargo librust-bindgen-dev librust-libc-dev librust-pkg-config-dev libclang-dev)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	sudo_=; [ "$(id -u)" -eq 0 ] || sudo_=sudo
	$sudo_ apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
