# callrec: `make demo` runs the appliance with simulated seats; `make test` runs every test.
# Both install what is missing first (apt packages when run as root, otherwise the one line to run).

APT_PKGS := pkg-config libasound2-dev cmake opus-tools ffmpeg sqlite3 espeak-ng sox alsa-utils chromium chromium-driver curl openssl
CARGO ?= cargo
JOBS ?= 2

.PHONY: deps build demo test lint bench clean cutfs crash-campaign powercut-campaign

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

test: deps lint cutfs
	$(CARGO) build --release -j$(JOBS) --locked --all-targets
	$(CARGO) test --release -j$(JOBS) --locked --manifest-path tools/cutfs/Cargo.toml
	$(CARGO) test --release -j$(JOBS) --locked --lib --bins --tests -- --test-threads=2

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --all-targets -- -D warnings

# cutfs: the FUSE test filesystem of the power-cut campaign (its own crate; fuse3 gives fusermount3).
cutfs: deps
	@dpkg-query -W -f='$${Status}\n' fuse3 2>/dev/null | grep -q '^install ok installed' || \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing: fuse3"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fuse3) >/dev/null || exit 1; \
	  else \
	    echo "missing package; run:  sudo apt-get install -y fuse3"; exit 1; \
	  fi
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
