# Cross build for aarch64 Linux (ARMv8.0-A baseline, Debian's g++-aarch64-linux-gnu),
# tests under qemu-aarch64. qemu-user makes the cache maintenance the writer
# does a no-op and reports CTR_EL0.IDC = DIC = 1 (docs/aarch64.md): the
# aarch64-linux suites run the same binaries inside Debian's arm64 kernel.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_ASM_COMPILER aarch64-linux-gnu-gcc)
# Static binaries run under qemu-aarch64 (and in the guest's initramfs) without a sysroot lookup.
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
