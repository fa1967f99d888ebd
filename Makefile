# Thin wrapper around meson: `make demo` boots the sample container,
# `make check` runs every test. Both install missing Debian packages first.
PYTHON ?= /usr/bin/python3
BUILD ?= build
ASAN_BUILD ?= build-asan
PYTEST_ARGS ?= -n 2 --dist loadgroup

.PHONY: all deps build demo check unit asan integration format format-check bench clean

all: build

deps:
	@bash scripts/install-deps.sh

build: deps
	@[ -f $(BUILD)/build.ninja ] || meson setup $(BUILD)
	ninja -C $(BUILD)

demo: build
	bash scripts/demo.sh

unit: build
	meson test -C $(BUILD) --suite unit --suite fuzz --print-errorlogs

asan: deps
	@[ -f $(ASAN_BUILD)/build.ninja ] || meson setup $(ASAN_BUILD) -Db_sanitize=address,undefined -Db_lundef=false
	ninja -C $(ASAN_BUILD)
	meson test -C $(ASAN_BUILD) --suite unit --suite fuzz --print-errorlogs

integration: build
	$(PYTHON) -m pytest $(PYTEST_ARGS) tests/integration

format-check: deps
	git ls-files '*.c' '*.h' | xargs clang-format --dry-run -Werror

format:
	git ls-files '*.c' '*.h' | xargs clang-format -i

check: format-check unit asan integration

bench: build
	bash bench/run.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
