#!/usr/bin/env bash
# Archive shipping throughput: `callrec ship` drains a backlog of N finished calls of M minutes
# each into a one-node Ceph RGW on loopback (scripts/rgw.sh). Prints calls/s, MB/s and the
# shipper's CPU seconds per call-hour (user + system, from /proc/<pid>/stat).
#
# The calls are one real recording (`callrec encode` of M minutes of two-channel noise at the
# default 16 kHz / 16 kbit/s per party) copied N times with rows inserted by sqlite3 (no ledger
# entries: the sidecars are a little smaller than a recorded call's). Needs `make archive-deps`
# and a release build. Usage: benches/archive_ship.sh [N=24] [M=10]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-24}; M=${2:-10}
BIN=target/release/callrec
W=$(mktemp -d /tmp/callrec-ship-bench.XXXXXX)
cleanup() { [ -n "${SHIP:-}" ] && kill "$SHIP" 2>/dev/null; scripts/rgw.sh stop "$W/rgw" || true; rm -rf "$W"; }
trap cleanup EXIT

scripts/rgw.sh start "$W/rgw" benchkey benchsecret0123456789 >/dev/null
scripts/rgw.sh mkbucket "$W/rgw" bench
printf '[default]\naws_access_key_id = benchkey\naws_secret_access_key = benchsecret0123456789\n' >"$W/creds"
chmod 600 "$W/creds"
cat >"$W/c.toml" <<EOF
[box]
id = "bench-box"
[storage]
dir = "$W/s"
[archive]
endpoint = "$(cat "$W/rgw/endpoint")"
bucket = "bench"
credentials_file = "$W/creds"
EOF
mkdir -p "$W/s"
"$BIN" --config "$W/c.toml" users list >/dev/null 2>&1 || true   # makes and migrates the index
sox -q -n -r 16000 -c 2 -b 16 "$W/in.wav" synth $((M * 60)) pinknoise vol 0.3
"$BIN" encode "$W/in.wav" "$W/one.opus" >/dev/null
bytes=$(stat -c %s "$W/one.opus"); sha=$(sha256sum "$W/one.opus" | cut -d' ' -f1)
mkdir -p "$W/s/calls/2026/12/05"
{
  echo "BEGIN;"
  for i in $(seq "$N"); do
    cp "$W/one.opus" "$W/s/calls/2026/12/05/$i.opus"
    echo "INSERT INTO calls (id, box_id, seat_id, mode, status, started_at_utc, started_mono_ms, ended_at_utc, duration_ms, bytes, sha256, rate_hz, bitrate_bps, rel_path) VALUES ($i, 'bench-box', 's1', 'control', 'complete', '2026-12-05T10:00:00.000Z', 0, '2026-12-05T10:10:00.000Z', $((M * 60000)), $bytes, '$sha', 16000, 16000, 'calls/2026/12/05/$i.opus');"
  done
  echo "COMMIT;"
} | sqlite3 "$W/s/callrec.db"

t0=$(date +%s.%N)
"$BIN" --config "$W/c.toml" ship 2>"$W/ship.log" &
SHIP=$!
until "$BIN" --config "$W/c.toml" archive status --json | grep -q '"calls": 0'; do
  kill -0 "$SHIP" || { cat "$W/ship.log"; exit 1; }
  sleep 0.1
done
t1=$(date +%s.%N)
read -r utime stime < <(awk '{print $14, $15}' "/proc/$SHIP/stat")
kill "$SHIP"; wait "$SHIP" || true; SHIP=
archived=$("$BIN" --config "$W/c.toml" archive status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["backlog"]["archived_calls"])')
[ "$archived" = "$N" ] || { echo "only $archived of $N archived"; exit 1; }
python3 - "$N" "$M" "$bytes" "$t0" "$t1" "$utime" "$stime" "$(getconf CLK_TCK)" <<'EOF'
import sys
n, m, b, t0, t1, u, s, hz = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), *map(float, sys.argv[4:])
wall = t1 - t0
cpu = (u + s) / hz
hours = n * m / 60
print("| calls | minutes each | MB each | wall s | calls/s | MB/s | shipper CPU s | CPU s per call-hour |")
print("|---|---|---|---|---|---|---|---|")
print(f"| {n} | {m} | {b/1e6:.2f} | {wall:.1f} | {n/wall:.2f} | {n*b/1e6/wall:.1f} | {cpu:.2f} | {cpu/hours:.3f} |")
EOF
