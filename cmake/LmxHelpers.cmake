# Shared CMake helpers: one library target per layer, one test binary per layer.

set(LMX_WARNINGS -Wall -Wextra)
if(LMX_WERROR)
  list(APPEND LMX_WARNINGS -Werror)
endif()
set(LMX_LAYER_TARGETS "" CACHE INTERNAL "")

function(lmx_add_subdirectory_if_present dir)
  if(EXISTS ${CMAKE_SOURCE_DIR}/${dir}/CMakeLists.txt)
    add_subdirectory(${CMAKE_SOURCE_DIR}/${dir} ${CMAKE_BINARY_DIR}/${dir})
  endif()
endfunction()

function(lmx_apply_common_options target)
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${LMX_WARNINGS}>)
  # GCC fuses a * b + c into one FMA wherever the target has one, which on aarch64 is
  # everywhere: scalar code then rounds differently from the same arithmetic done op by op
  # (the fused Adam step against the composed one, bit for bit). x86-64's baseline has no FMA,
  # so there the written roundings hold outside the AVX2 / AVX-512 sources; -ffp-contract=off
  # gives aarch64 the same (the NEON kernels' FMAs are explicit intrinsics, unaffected).
  if(LMX_SIMD_ARCH STREQUAL "arm64")
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:C,CXX>:-ffp-contract=off>)
  endif()
  if(LMX_SANITIZE)
    # Every finding fails: UBSan reports abort instead of printing and going on.
    target_compile_options(${target} PRIVATE -fsanitize=address,undefined -fno-sanitize-recover=all
                                             -fno-omit-frame-pointer)
    target_link_options(${target} PRIVATE -fsanitize=address,undefined)
  endif()
  if(LMX_TSAN)
    target_link_options(${target} PRIVATE -fsanitize=thread)
    if(NOT target MATCHES "^lmx_" OR target MATCHES "^lmx_(base|generate|server)$")
      # -O1 and line tables: readable reports at a moderate compile cost.
      target_compile_options(${target} PRIVATE -fsanitize=thread -O1 -g1)
    endif()
  endif()
endfunction()

# Which SIMD kernels this build carries: the x86 tiers (AVX2 / AVX-512) on x86-64, the NEON
# tier on aarch64, only the scalar references elsewhere (lmx/backend/cpu/cpu_features.h).
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  set(LMX_SIMD_ARCH x86)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64|ARM64)$")
  set(LMX_SIMD_ARCH arm64)
else()
  set(LMX_SIMD_ARCH none)
endif()

# lmx_add_layer(NAME lmx_core SOURCES a.cpp ... [AVX2_SOURCES k.cpp ...] [NEON_SOURCES n.cpp ...]
#               DEPS ... [PRIVATE_DEPS ...])
# AVX2_SOURCES (x86-64 builds only) get -mavx2 -mfma -mf16c; they must only run after a CPU
# feature check. NEON_SOURCES (aarch64 builds only) need no flag: Advanced SIMD is baseline
# there, and their dot-product functions carry their own target attributes.
function(lmx_add_layer)
  cmake_parse_arguments(L "" "NAME" "SOURCES;AVX2_SOURCES;NEON_SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  if(NOT LMX_SIMD_ARCH STREQUAL "x86")
    set(L_AVX2_SOURCES "")
  endif()
  if(NOT LMX_SIMD_ARCH STREQUAL "arm64")
    set(L_NEON_SOURCES "")
  endif()
  add_library(${L_NAME} STATIC ${L_SOURCES} ${L_AVX2_SOURCES} ${L_NEON_SOURCES})
  string(REPLACE "lmx_" "" short ${L_NAME})
  add_library(lmx::${short} ALIAS ${L_NAME})
  target_include_directories(${L_NAME} PUBLIC
    $<BUILD_INTERFACE:${CMAKE_SOURCE_DIR}> $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  target_link_libraries(${L_NAME} PUBLIC ${L_DEPS} PRIVATE ${L_PRIVATE_DEPS})
  if(L_AVX2_SOURCES)
    set_source_files_properties(${L_AVX2_SOURCES} PROPERTIES COMPILE_OPTIONS "-mavx2;-mfma;-mf16c")
  endif()
  lmx_apply_common_options(${L_NAME})
  # Coverage feedback for the fuzzers where the parsers live; the numeric layers stay
  # uninstrumented (their loops would only slow the sanitizer test run).
  if(LMX_FUZZ AND NOT L_NAME MATCHES "^lmx_(core|nn|backend_.*)$")
    target_compile_options(${L_NAME} PRIVATE -fsanitize=fuzzer-no-link)
  endif()
  set(LMX_LAYER_TARGETS ${LMX_LAYER_TARGETS} ${L_NAME} CACHE INTERNAL "")
endfunction()

# lmx_add_test(NAME core_test SOURCES ... DEPS ... [LABELS unit])
# Tests run with the source tree as working directory so ../shared/data resolves
# the same way from every binary.
function(lmx_add_test)
  cmake_parse_arguments(T "" "NAME" "SOURCES;DEPS;LABELS" ${ARGN})
  if(NOT T_LABELS)
    set(T_LABELS unit)
  endif()
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE ${T_DEPS} GTest::gtest GTest::gtest_main)
  target_compile_definitions(${T_NAME} PRIVATE LMX_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
  lmx_apply_common_options(${T_NAME})
  set_property(GLOBAL APPEND PROPERTY LMX_TEST_BINARIES ${T_NAME})
  gtest_discover_tests(${T_NAME}
    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}
    PROPERTIES LABELS "${T_LABELS}"
    DISCOVERY_TIMEOUT 60)
endfunction()
