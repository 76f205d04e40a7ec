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

find_program(LMX_QEMU_AARCH64 qemu-aarch64 REQUIRED)
set(CMAKE_CROSSCOMPILING_EMULATOR ${LMX_QEMU_AARCH64};-cpu;max;-L;/usr/${_lmx_triple})
