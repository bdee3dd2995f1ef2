#!/bin/bash
# build-test-kernel.sh [OUT_DIR] - build the iommufd test kernel (Linux 6.12
# with CONFIG_IOMMUFD_TEST) from Debian's linux-source-6.12, for machines
# without ../shared/kernel. Default output: build/test-kernel/bzImage, where
# tests/kernel/run-in-vm.sh looks. About 6 minutes on 2 cores.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$top/build/test-kernel}
sudo_=; [ "$(id -u)" -eq 0 ] || sudo_=sudo
DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq linux-source-6.12 \
	flex bison bc libelf-dev libssl-dev build-essential >/dev/null
work=$(mktemp -d /var/tmp/iopf-kbuild.XXXXXX)
trap 'rm -rf "$work"' EXIT
tar -C "$work" -xf /usr/src/linux-source-6.12.tar.xz
src=$work/linux-source-6.12
make -C "$src" O="$work/o" tinyconfig >/dev/null
"$src/scripts/kconfig/merge_config.sh" -O "$work/o" -m "$work/o/.config" \
	"$top/tests/kernel/iopf-test.config" >/dev/null
make -C "$src" O="$work/o" olddefconfig >/dev/null
for opt in IOMMUFD IOMMUFD_TEST IOMMU_IOPF 9P_FS VIRTIO_PCI EVENTFD TIMERFD; do
	grep -q "^CONFIG_$opt=y" "$work/o/.config" ||
		{ echo "build-test-kernel: CONFIG_$opt did not stick" >&2; exit 1; }
done
make -C "$src" O="$work/o" -j"$(nproc)" bzImage >/dev/null
mkdir -p "$out"
cp "$work/o/arch/x86/boot/bzImage" "$out/bzImage"
echo "built $out/bzImage"
