# Cross build for aarch64 Linux with Debian's cross toolchain (g++-aarch64-linux-gnu) and
# the arm64 multiarch -dev packages (tools/setup.sh --arm64 installs both, and qemu-user):
#   cmake -S . -B build-arm -G Ninja -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
# ctest runs the test binaries (and gtest's test discovery) under qemu-aarch64, with -cpu max
# so the NEON tier's dotprod / i8mm / bf16 paths are reachable.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(_lmx_triple aarch64-linux-gnu)

set(CMAKE_C_COMPILER ${_lmx_triple}-gcc)
set(CMAKE_CXX_COMPILER ${_lmx_triple}-g++)

# Debian multiarch: the arm64 -dev packages put their libraries, pkg-config files and CMake
# packages under /usr/lib/aarch64-linux-gnu, which CMAKE_LIBRARY_ARCHITECTURE selects (the
# headers are shared with the host's); pkg-config must not see the host's .pc files.
set(CMAKE_LIBRARY_ARCHITECTURE ${_lmx_triple})
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/${_lmx_triple}/pkgconfig:/usr/share/pkgconfig)

# qemu's -L prefix decides which dynamic loader runs the tests, and it must be the one of
# the libc that is loaded: with the arm64 multiarch libc6 installed (the -dev packages pull
# it in), the binaries' libc.so.6 comes from /lib/aarch64-linux-gnu, so its own loader
# (/lib/ld-linux-aarch64.so.1, prefix /) must run them. The cross package's loader under
# /usr/aarch64-linux-gnu is another build of glibc (2.36-8cross1 against 2.36-9+deb12u14 on
# Debian 12): paired with the multiarch libc, every program hung in its first
# pthread_create (a plain std::thread too), which is what kept the thread-pool tests from
# running under qemu. Without the multiarch libc the cross prefix is self-consistent.
if(EXISTS /lib/ld-linux-aarch64.so.1)
  set(_lmx_qemu_prefix /)
else()
  set(_lmx_qemu_prefix /usr/${_lmx_triple})
endif()
find_program(LMX_QEMU_AARCH64 qemu-aarch64 REQUIRED)
set(CMAKE_CROSSCOMPILING_EMULATOR ${LMX_QEMU_AARCH64};-cpu;max;-L;${_lmx_qemu_prefix})
