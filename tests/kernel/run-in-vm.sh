#!/bin/bash
# run-in-vm.sh PROGRAM [ARGS...] - run a test program inside the iommufd test
# kernel (Linux 6.12 + CONFIG_IOMMUFD_TEST) under QEMU.
# The kernel image: $IOPF_TEST_KERNEL, else ../shared/kernel/bzImage beside
# the source tree, else build/test-kernel/bzImage (scripts/build-test-kernel.sh).
# With --image NAME (e.g. bzImage-paging, 6.12 with 6.13's fault ids on
# paging tables) the image NAME is taken from the same places (beside
# $IOPF_TEST_KERNEL when that is set); IOPF_TEST_IMAGE=NAME is passed on
# to the program.
# Without a kernel or qemu-system-x86_64 the test is skipped (exit 77) with
# a one-line reason; with CI=true a skip is a failure (exit 1).
set -u
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
skip() {
	if [ "${CI:-}" = true ]; then
		echo "kernel test cannot run in CI: $*" >&2
		exit 1
	fi
	echo "SKIP: $*"
	exit 77
}
image=bzImage
if [ "${1:-}" = --image ]; then
	image=$2
	shift 2
fi
export IOPF_TEST_IMAGE=$image
kernel=${IOPF_TEST_KERNEL:-}
if [ -n "$kernel" ] && [ "$image" != bzImage ]; then
	kernel=$(dirname "$kernel")/$image
elif [ -z "$kernel" ]; then
	for k in "$src/../shared/kernel/$image" "$src/build/test-kernel/$image"; do
		[ -r "$k" ] && { kernel=$k; break; }
	done
fi
[ -n "$kernel" ] && [ -r "$kernel" ] ||
	skip "no test kernel $image (set IOPF_TEST_KERNEL or run scripts/build-test-kernel.sh)"
command -v qemu-system-x86_64 >/dev/null ||
	skip "qemu-system-x86_64 missing (apt-get install qemu-system-x86)"
vmrun="$src/../shared/kernel/vmrun"
[ -x "$vmrun" ] || vmrun="$src/scripts/vmrun"
exec "$vmrun" --kernel "$kernel" --timeout "${IOPF_VM_TIMEOUT:-900}" -- "$@"
