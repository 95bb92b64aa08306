# callrec: `make demo` runs the appliance with simulated seats; `make test` runs every test;
# `make deb` builds the Debian package for a box (target/deb/callrec_<version>_<arch>.deb).
# Each installs what is missing first (apt packages when run as root, otherwise the one line to
# run). Building (build, deb) installs build dependencies only: never a browser or test tools.

# What compiling needs (cpal -> alsa-sys: libasound2-dev, pkg-config; opusic-sys: cmake).
BUILD_APT_PKGS := pkg-config libasound2-dev cmake
# What `make deb` adds: dpkg-shlibdeps (Depends from the binary's libraries) and strip.
DEB_APT_PKGS := dpkg-dev binutils
# What the tests add: encoders and probes for fixtures and checks, the browser of the UI tests,
# systemd-analyze for the units, lintian for the package, unzip for the browser's evidence zip.
TEST_APT_PKGS := opus-tools ffmpeg sqlite3 espeak-ng sox alsa-utils chromium chromium-driver curl jq openssl systemd lintian unzip
# What `make demo` adds: espeak-ng and sox make fixtures/demo-call.wav on the first run.
DEMO_APT_PKGS := espeak-ng sox
CARGO ?= cargo
JOBS ?= 2

.PHONY: deps test-deps build demo test lint lint-js deps-js bench clean cutfs crash-campaign powercut-campaign archive-deps deb test-deb

deps:
	@scripts/apt-need.sh $(BUILD_APT_PKGS)
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install the Rust toolchain (rustup)"; exit 1; }

test-deps: deps
	@scripts/apt-need.sh $(TEST_APT_PKGS)

build: deps
	$(CARGO) build --release -j$(JOBS) --locked

demo: build
	@scripts/apt-need.sh $(DEMO_APT_PKGS)
	@scripts/demo.sh

# The package: scripts/build-deb.sh says where every file goes; hw/README.md how to install it.
deb: deps
	@scripts/apt-need.sh $(DEB_APT_PKGS)
	$(CARGO) build --release -j$(JOBS) --locked
	scripts/build-deb.sh

# Install, upgrade, remove and purge the package with dpkg (root only; skipped otherwise), plus
# lintian and systemd-analyze. CALLREC_BIN=path tests a prebuilt binary without building.
test-deb: test-deps
	@scripts/apt-need.sh $(DEB_APT_PKGS)
	$(if $(CALLREC_BIN),,$(CARGO) build --release -j$(JOBS) --locked)
	CALLREC_BIN=$(CALLREC_BIN) tests/deb/run.sh

test: test-deps lint cutfs archive-deps
	$(CARGO) build --release -j$(JOBS) --locked --all-targets
	$(CARGO) test --release -j$(JOBS) --locked --manifest-path tools/cutfs/Cargo.toml
	FUZZ_REPLAY_MS=$(FUZZ_REPLAY_MS) $(CARGO) test --release -j$(JOBS) --locked --lib --bins --tests -- --test-threads=2
	@$(MAKE) --no-print-directory test-deb

lint: deps lint-js
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --all-targets -- -D warnings

# The web UI's hand-written scripts: syntax (node --check), ESLint (pinned by package-lock.json,
# config in eslint.config.mjs), and the browser's score preview against the cases the Rust unit
# tests check the server's score with (fixtures/score-cases.json).
JS_FILES := $(wildcard src/serve/assets/*.js) $(wildcard scripts/*.mjs) eslint.config.mjs

lint-js: node_modules/.package-lock.json
	@for f in $(JS_FILES); do node --check $$f || { echo "node --check $$f failed"; exit 1; }; done
	node_modules/.bin/eslint --max-warnings 0 $(JS_FILES)
	node scripts/check-score-preview.mjs

# npm ci installs exactly what package-lock.json pins; run again only when it changes.
node_modules/.package-lock.json: package.json package-lock.json | deps-js
	npm ci --no-audit --no-fund

# node and npm: the machine's own (any Node.js >= 18.18) or else Debian's packages. Checked by
# command, not by package: a NodeSource nodejs (as on the project's machines) bundles npm and
# conflicts with Debian's npm package.
deps-js:
	@if ! command -v node >/dev/null || ! command -v npm >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing: nodejs npm"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm) >/dev/null || exit 1; \
	  else \
	    echo "node/npm missing; run:  sudo apt-get install -y nodejs npm"; exit 1; \
	  fi; \
	fi


# Fuzzing: libFuzzer (libfuzzer-sys, pinned in fuzz/Cargo.lock) built on the stable toolchain with
# SanitizerCoverage flags (fuzz/run.sh); libFuzzer itself needs a C++ compiler. `make test` runs
# the short version: tests/it/fuzz_replay.rs replays fuzz/corpus/ and mutates it FUZZ_REPLAY_MS
# per target, without building the instrumented harness.
FUZZ_SECONDS ?= 60
FUZZ_REPLAY_MS ?= 2000
FUZZ_APT_PKGS := g++
.PHONY: fuzz fuzz-deps
fuzz-deps: deps
	@scripts/apt-need.sh $(FUZZ_APT_PKGS)

fuzz: fuzz-deps
	FUZZ_SECONDS=$(FUZZ_SECONDS) JOBS=$(JOBS) CARGO=$(CARGO) fuzz/run.sh

# archive-deps: a one-node Ceph cluster with a RADOS Gateway, the S3 store the archive tests ship
# to (scripts/rgw.sh starts and stops it; see ../shared/notes/fleet.md).
ARCHIVE_APT_PKGS := ceph-mon ceph-osd radosgw ceph-common uuid-runtime curl python3
archive-deps: deps
	@scripts/apt-need.sh $(ARCHIVE_APT_PKGS)

# cutfs: the FUSE test filesystem of the power-cut campaign (its own crate; fuse3 gives fusermount3).
cutfs: deps
	@scripts/apt-need.sh fuse3
	$(CARGO) fmt --manifest-path tools/cutfs/Cargo.toml -- --check
	$(CARGO) build --release -j$(JOBS) --locked --manifest-path tools/cutfs/Cargo.toml

# Durability campaigns (RELIABILITY.md); `make test` runs 3 cycles of each.
crash-campaign: CYCLES ?= 100
crash-campaign: build test-deps
	CALLREC_CAMPAIGN_CYCLES=$(CYCLES) $(CARGO) test --release -j$(JOBS) --locked --test it -- --exact campaign::crash::crash_campaign --nocapture

powercut-campaign: CYCLES ?= 50
powercut-campaign: build cutfs test-deps
	CALLREC_CAMPAIGN_CYCLES=$(CYCLES) $(CARGO) test --release -j$(JOBS) --locked --test it -- --exact campaign::powercut::powercut_campaign --nocapture

bench: build test-deps
	benches/libopus_patch.sh
	benches/encode_vs_opusenc.sh
	benches/seat_capacity.sh
	benches/search_1m.sh
	benches/stream_vs_nginx.sh
	benches/export_verify.sh
	benches/import_vs_ffmpeg.sh

clean:
	$(CARGO) clean
