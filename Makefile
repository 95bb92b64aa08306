# callrec: `make demo` runs the appliance with simulated seats; `make test` runs every test.
# Both install what is missing first (apt packages when run as root, otherwise the one line to run).

APT_PKGS := pkg-config libasound2-dev cmake opus-tools ffmpeg sqlite3 espeak-ng sox alsa-utils chromium chromium-driver curl openssl systemd
CARGO ?= cargo
JOBS ?= 2

.PHONY: deps build demo test lint lint-js deps-js bench clean cutfs crash-campaign powercut-campaign archive-deps

deps:
	@scripts/apt-need.sh $(APT_PKGS)
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install the Rust toolchain (rustup)"; exit 1; }

build: deps
	$(CARGO) build --release -j$(JOBS) --locked

demo: build
	@scripts/demo.sh

test: deps lint cutfs archive-deps
	$(CARGO) build --release -j$(JOBS) --locked --all-targets
	$(CARGO) test --release -j$(JOBS) --locked --manifest-path tools/cutfs/Cargo.toml
	FUZZ_REPLAY_MS=$(FUZZ_REPLAY_MS) $(CARGO) test --release -j$(JOBS) --locked --lib --bins --tests -- --test-threads=2

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
crash-campaign: build
	CALLREC_CAMPAIGN_CYCLES=$(CYCLES) $(CARGO) test --release -j$(JOBS) --locked --test it -- --exact campaign::crash::crash_campaign --nocapture

powercut-campaign: CYCLES ?= 50
powercut-campaign: build cutfs
	CALLREC_CAMPAIGN_CYCLES=$(CYCLES) $(CARGO) test --release -j$(JOBS) --locked --test it -- --exact campaign::powercut::powercut_campaign --nocapture

bench: build
	benches/encode_vs_opusenc.sh
	benches/seat_capacity.sh
	benches/search_1m.sh
	benches/stream_vs_nginx.sh
	benches/export_verify.sh
	benches/import_vs_ffmpeg.sh

clean:
	$(CARGO) clean
