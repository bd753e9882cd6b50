# dlstatic — developer and user entry points. `make help` lists them.
SHELL := /bin/bash
CARGO ?= cargo
DLSTATIC := target/release/dlstatic

# Debian packages the pipeline and its tests need: the compiler and linker (gfortran for
# Fortran modules, ccache for --cc-launcher's test), static
# glibc (libc6-dev), the static archives of libraries modules link against, and
# binutils' objcopy/readelf (used by the tests only, as the reference for the rename);
# the consumers `dlstatic package`'s tests hand each artefact to (skopeo, umoci, QEMU with
# Debian's cloud kernel, strace, unzip).
APT_PACKAGES := build-essential binutils libc6-dev zlib1g-dev file util-linux pkg-config dpkg-dev \
	libssl-dev libffi-dev libsqlite3-dev libbz2-dev liblzma-dev libreadline-dev libncurses-dev \
	uuid-dev libgdbm-dev libgdbm-compat-dev libb2-dev libnsl-dev libtirpc-dev libcrypt-dev \
	tk-dev libx11-dev libxss-dev libyaml-dev libpq-dev postgresql libxslt1-dev libxml2-dev autoconf automake libtool \
	skopeo umoci qemu-system-x86 linux-image-cloud-amd64 strace unzip gfortran ccache \
	libfreetype-dev libqhull-dev libjpeg-dev cmake

# Debian's pristine CPython 3.11 tarball (python3.11_*.orig.tar.gz), the default --python-src.
CACHE ?= $(or $(DLSTATIC_CACHE),$(addsuffix /dlstatic,$(filter /%,$(XDG_CACHE_HOME))),$(HOME)/.cache/dlstatic)
SRC_LIST := /etc/apt/sources.list.d/dlstatic-src.sources

.PHONY: help setup python-src build run test test-fast test-packages package-table fuzz-ci fuzz-brief fuzz-tools sanitize bench bench-deploy bench-libc-exports bench-packages bench-scientific demo fuzz clean

help:
	@echo "make setup       install the Debian packages dlstatic needs and fetch the CPython source"
	@echo "make run         build the static interpreter with extensions/modules.txt into dist/"
	@echo "make build       build target/release/dlstatic"
	@echo "make python-src  fetch Debian's CPython 3.11 source tarball into $(CACHE)/src"
	@echo "make test        every test but test-packages (fixtures, CPython, PyPI packages, fuzz seeds; CI)"
	@echo "make package-table  rewrite README's table of packages known to work from the last test runs"
	@echo "make test-fast   the unit, CLI and fixture tests only (a few minutes; the edit loop)"
	@echo "make test-packages  the #[ignore]d tests: packages that build for many minutes (rapidfuzz, pandas, gevent, scipy, cryptography, grpcio, matplotlib, pydantic, lxml)"
	@echo "make sanitize    the runtime shim under ASan+UBSan and TSan, 8 threads x 1e5 rounds"
	@echo "make bench       measure dlstatic against the alternatives; writes bench/results.md"
	@echo "make bench-deploy  single file vs directory vs dynamic CPython start-up; writes bench/deploy-results.md"
	@echo "make bench-libc-exports  size and start-up cost of linking all of glibc's public functions; writes bench/libc-exports-results.md"
	@echo "make bench-scientific  start-up of a numpy+scipy+pandas payload vs dynamic; writes bench/scientific-results.md"
	@echo "make bench-packages  ten sdists: --jobs 1 vs 2, ccache cold vs warm; writes bench/packages-results.md"
	@echo "make demo        capture two plugins, link a static host, run it in an empty root"
	@echo "make fuzz        each cargo-fuzz target for FUZZ_SECONDS (60) s; executions, crashes (docs/fuzzing.md)"

setup:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "Debian packages: all present"; fi
	@command -v $(CARGO) >/dev/null || { echo "error: cargo not found; install Rust (https://rustup.rs)"; exit 1; }
	@$(MAKE) --no-print-directory python-src

python-src:
	@if ls $(CACHE)/src/python3.11_*.orig.tar.* >/dev/null 2>&1; then echo "CPython source: cached in $(CACHE)/src"; else \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		if ! grep -rqs '^Types: deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then \
			printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' | $$SUDO tee $(SRC_LIST) >/dev/null; \
			$$SUDO apt-get update -qq; fi; \
		mkdir -p $(CACHE)/src && cd $(CACHE)/src && apt-get source --download-only python3.11 2>&1 | grep -v '^W: Download is performed unsandboxed'; \
		ls $(CACHE)/src/python3.11_*.orig.tar.* >/dev/null; fi

run: build
	$(DLSTATIC) build --modules extensions/modules.txt --out dist

build:
	$(CARGO) build --release

# every test but the #[ignore]d ones (make test-packages), then fuzz-ci
test:
	$(CARGO) test --release
	@$(MAKE) --no-print-directory fuzz-ci

# the tests marked #[ignore] for their build time (tests/big_packages.rs, pydantic in
# tests/popular_packages.rs, lxml in tests/deps.rs); results in docs/packages.md
test-packages:
	$(CARGO) test --release -- --ignored

test-fast:
	$(CARGO) test --release --lib --test cli --test fixtures --test rename_vs_objcopy --test bad_inputs

# README's table of packages known to work, from what the package tests recorded in
# target/tmp/package-results/ (run make test and make test-packages first)
package-table:
	python3 scripts/package_table.py target/tmp/package-results README.md

# (make test runs a short version, tests/sanitize.rs)
sanitize:
	tests/sanitize/run.sh 100000

# hyperfine times the commands; lld and mold are the alternative linkers compared
BENCH_PACKAGES := hyperfine lld mold bc

bench: setup
	@missing=$$(for p in $(BENCH_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); $$SUDO apt-get update -qq; \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; fi
	bench/run.sh

# in a recipe, `$(call need-tool,NAME)`: the Debian package NAME installed unless its
# command NAME is on PATH
need-tool = @command -v $(1) >/dev/null || { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); $$SUDO apt-get install -y -qq --no-install-recommends $(1); }

bench-deploy: setup
	$(call need-tool,hyperfine)
	bench/deploy.sh

bench-libc-exports: setup
	$(call need-tool,hyperfine)
	bench/libc_exports.sh

bench-scientific: setup
	$(call need-tool,hyperfine)
	bench/scientific.sh

bench-packages: setup
	$(call need-tool,bc)
	bench/packages.sh

demo: build
	./examples/demo.sh $(DLSTATIC)

# needs nightly Rust and cargo-fuzz (cargo install cargo-fuzz); one target at a time
fuzz:
	FUZZ_SECONDS=$(or $(FUZZ_SECONDS),60) fuzz/run.sh

# make test's share of fuzzing: every fuzz check over the committed seeds and fixed
# findings (stable Rust). The seed tests share make test's target directory and profile,
# so only ~25 crates build again (2m23s on the shared 2 cores). The targets themselves
# need nightly Rust and cargo-fuzz, which make setup does not install (they would add
# minutes to every `make test` machine): .ci/run installs them after `make test` (`make
# fuzz-tools`) and runs each target for FUZZ_CI_SECONDS (`make fuzz-brief`); a crash
# fails it.
FUZZ_CI_SECONDS ?= 5
fuzz-ci:
	cd fuzz && CARGO_TARGET_DIR=$(CURDIR)/target CARGO_PROFILE_RELEASE_DEBUG=false $(CARGO) test --release

fuzz-brief:
	FUZZ_SECONDS=$(FUZZ_CI_SECONDS) FUZZ_CC_SAMPLE=20 fuzz/run.sh

# nightly Rust (rustup, minimal profile) and cargo-fuzz (crates.io), where missing
fuzz-tools:
	@$(CARGO) +nightly --version >/dev/null 2>&1 || rustup toolchain install nightly --profile minimal
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked

clean:
	$(CARGO) clean
