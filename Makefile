# callrec: `make demo` runs the appliance with simulated seats; `make test` runs every test.
# Both install what is missing first (apt packages when run as root, otherwise the one line to run).

APT_PKGS := pkg-config libasound2-dev cmake opus-tools ffmpeg sqlite3 espeak-ng sox alsa-utils chromium chromium-driver curl openssl
CARGO ?= cargo
JOBS ?= 2

.PHONY: deps build demo test lint bench clean

deps:
	@missing=$$(for p in $(APT_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing: $$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing) >/dev/null || exit 1; \
	  else \
	    echo "missing packages; run:  sudo apt-get install -y $$missing"; exit 1; \
	  fi; \
	fi
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install the Rust toolchain (rustup)"; exit 1; }

build: deps
	$(CARGO) build --release -j$(JOBS) --locked

demo: build
	@scripts/demo.sh

test: deps lint
	$(CARGO) build --release -j$(JOBS) --locked --all-targets
	FUZZ_REPLAY_MS=$(FUZZ_REPLAY_MS) $(CARGO) test --release -j$(JOBS) --locked --lib --bins --tests -- --test-threads=2

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --all-targets -- -D warnings

# Fuzzing: libFuzzer (libfuzzer-sys, pinned in fuzz/Cargo.lock) built on the stable toolchain with
# SanitizerCoverage flags (fuzz/run.sh); libFuzzer itself needs a C++ compiler. `make test` runs
# the short version: tests/it/fuzz_replay.rs replays fuzz/corpus/ and mutates it FUZZ_REPLAY_MS
# per target, without building the instrumented harness.
FUZZ_SECONDS ?= 60
FUZZ_REPLAY_MS ?= 2000
FUZZ_APT_PKGS := g++
.PHONY: fuzz fuzz-deps
fuzz-deps: deps
	@missing=$$(for p in $(FUZZ_APT_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing: $$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing) >/dev/null || exit 1; \
	  else \
	    echo "missing packages; run:  sudo apt-get install -y $$missing"; exit 1; \
	  fi; \
	fi

fuzz: fuzz-deps
	FUZZ_SECONDS=$(FUZZ_SECONDS) JOBS=$(JOBS) CARGO=$(CARGO) fuzz/run.sh

bench: build
	benches/encode_vs_opusenc.sh
	benches/seat_capacity.sh
	benches/search_1m.sh
	benches/stream_vs_nginx.sh
	benches/export_verify.sh
	benches/import_vs_ffmpeg.sh

clean:
	$(CARGO) clean
