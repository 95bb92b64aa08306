#!/usr/bin/env bash
# `make demo`: runs the appliance (`callrec run`: recorder + web UI) with simulated seats and a
# pretend CTI that starts and stops calls, so a new user sees calls land on disk, in the index
# and in the browser. Ctrl-C stops it cleanly (open calls are finalized). DEMO_SECONDS=N stops it
# after N seconds; DEMO_PORT (default 8443) picks the web port.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./target/release/callrec
demo=$PWD/demo
mkdir -p "$demo"
[ -f fixtures/demo-call.wav ] || fixtures/make-demo-call.sh fixtures/demo-call.wav >/dev/null
cat > "$demo/callrec.toml" <<TOML
# Demo box: four simulated seats. See hw/callrec.example.toml for real devices.
[box]
id = "demo-floor"

[storage]
dir = "$demo/store"

# The web UI: HTTPS with a self-signed certificate generated on first start (your browser asks
# you to accept it once). Loopback only for the demo.
[server]
bind = "127.0.0.1:${DEMO_PORT:-8443}"

# seat01: a recorded dialogue (espeak-ng) played as if from a 2-channel line adapter;
# calls are started and stopped by the pretend CTI below.
[[seat]]
id = "seat01"
mode = "control"
[[seat.input]]
kind = "file"
path = "$PWD/fixtures/demo-call.wav"
agent_channel = 0
customer_channel = 1

# seat02: voice-activated; a synthetic conversation with pauses starts and stops calls.
[[seat]]
id = "seat02"
mode = "vox"
vox_stop_after_ms = 3000
[[seat.input]]
kind = "synthetic"
seed = 2
agent_channel = 0
customer_channel = 1

# seat03: continuous recording, one file per minute.
[[seat]]
id = "seat03"
mode = "continuous"
roll_interval_s = 60
[[seat.input]]
kind = "synthetic"
seed = 3
agent_channel = 0
customer_channel = 1

# seat04: headset and line tap on two devices whose clocks differ by 150 ppm; the recorder
# keeps the two parties aligned.
[[seat]]
id = "seat04"
mode = "control"
[[seat.input]]
kind = "synthetic"
seed = 4
channels = 1
agent_channel = 0
[[seat.input]]
kind = "synthetic"
seed = 4
channels = 1
customer_channel = 0
drift_ppm = 150.0
TOML
"$bin" --config "$demo/callrec.toml" config check
cli="$bin --config $demo/callrec.toml"
cat <<MSG

callrec demo: recording 4 simulated seats into $demo/store, web UI on https://localhost:${DEMO_PORT:-8443}/
  calls land in   $demo/store/calls/YYYY/MM/DD/<id>.opus  (Ogg Opus, ch 0 agent, ch 1 customer)
  index           $demo/store/callrec.db (SQLite)
In another terminal:
  $cli call status
  $cli calls list
  $cli calls show 1
  opusinfo \$(ls $demo/store/calls/*/*/*/*.opus | head -1)
Press Ctrl-C to stop; open calls are finalized.

MSG
if [ -f "$demo/store/callrec.db" ]; then
  # Not the first start: the admin account exists, so issue a fresh one-time password.
  echo "callrec: web UI login: admin / $($cli users passwd admin | awk '{print $NF}') (one-time; you choose a new one)"
fi
"$bin" --config "$demo/callrec.toml" run &
rec=$!
stop() { kill -TERM "$rec" 2>/dev/null || true; wait "$rec" 2>/dev/null || true; kill "$cti" 2>/dev/null || true; }
trap stop INT TERM
for _ in $(seq 100); do [ -S "$demo/store/control.sock" ] && break; sleep 0.1; done
# The pretend CTI: agents log in; a call on seat01 and seat04 every 30 s, with a PCI pause and a
# hold in seat01's calls; each call stops with an outcome of its campaign's list (seeded defaults:
# `callrec outcomes list`), then wrap-up and ready, so handle time and conversion have data.
$cli call login --seat seat01 --agent sam >/dev/null || true
$cli call login --seat seat04 --agent ana >/dev/null || true
(
  n=0
  while true; do
    n=$((n + 1))
    $cli call start --seat seat01 --direction inbound --number "+1555123$((4000 + n))" --campaign information --tag demo >/dev/null || true
    $cli call start --seat seat04 --direction outbound --number "+1555987$((1000 + n))" --campaign telesales >/dev/null || true
    sleep 4
    $cli call hold --seat seat01 --reason "checking the tariff" >/dev/null || true
    sleep 3
    $cli call unhold --seat seat01 >/dev/null || true
    sleep 1
    $cli call pause --seat seat01 --by cti --reason "card number" >/dev/null || true
    sleep 4
    $cli call resume --seat seat01 >/dev/null || true
    sleep 8
    $cli call stop --seat seat01 --outcome "$([ $((n % 3)) = 0 ] && echo promotion_accepted || echo information_given)" >/dev/null || true
    if [ $((n % 2)) = 1 ]; then
      $cli call stop --seat seat04 --outcome sale --amount 49.90 >/dev/null || true
    else
      $cli call stop --seat seat04 --outcome not_interested >/dev/null || true
    fi
    $cli call wrapup --seat seat01 >/dev/null || true
    $cli call wrapup --seat seat04 >/dev/null || true
    sleep 3
    $cli call ready --seat seat01 >/dev/null || true
    $cli call ready --seat seat04 >/dev/null || true
    echo "--- $(date -u +%H:%M:%S) calls so far:"
    $cli calls list --limit 6 || true
    if [ "$n" = 1 ]; then
      # QA content once the first calls exist: accounts, a sampling plan drawn with a fixed
      # seed, evaluations (one acknowledged, one disputed), a spot check, and a complaint filed
      # and ruled justified (the operator's page, /agents/sam). Runs only once.
      echo "--- demo QA content (Review queue and Reports in the web UI):"
      $cli qa seed-demo || true
    fi
    sleep 7
  done
) &
cti=$!
if [ -n "${DEMO_SECONDS:-}" ]; then
  sleep "$DEMO_SECONDS"
  stop
else
  wait "$rec" || true
  kill "$cti" 2>/dev/null || true
fi
echo "demo stopped; recordings kept in $demo/store"
