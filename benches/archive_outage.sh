#!/usr/bin/env bash
# Backlog drain after an object-store outage, with recording going on (issue 13, Figures).
#
# A recorder (`callrec record`) with N synthetic seats in continuous mode, each rolling to a new
# call every ROLL s (so N calls finish every ROLL s), and a shipper (`callrec ship`) on a one-node
# Ceph RGW on loopback (scripts/rgw.sh). After WARM s of normal shipping, radosgw is stopped for
# T s (the mon and OSD stay up) while calls keep finishing; then it is started again. Polling
# `callrec archive status --json` every second, the script reports:
#   - backlog peak: calls and MB not yet confirmed by the store;
#   - drain time: from radosgw answering again until the oldest call waiting is younger than
#     one roll interval (the backlog is back to its steady state: only calls that just ended);
#   - drain rate: calls and MB confirmed during the drain, per second (archived_at_utc);
#   - dropped frames over every call of the run (0 is the requirement), and that no call was
#     marked archived while the store was down.
# Needs `make archive-deps`, sqlite3, python3 and a release build.
# Usage: benches/archive_outage.sh [N=16] [T=60]   (environment: ROLL=10, WARM=30)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-16}; T=${2:-60}; ROLL=${ROLL:-10}; WARM=${WARM:-30}
BIN=target/release/callrec
W=$(mktemp -d /tmp/callrec-outage-bench.XXXXXX)
REC=; SHIP=
cleanup() {
  for p in $SHIP $REC; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  scripts/rgw.sh stop "$W/rgw" >/dev/null 2>&1 || true
  rm -rf "$W"
}
trap cleanup EXIT

scripts/rgw.sh start "$W/rgw" benchkey benchsecret0123456789 >/dev/null
scripts/rgw.sh mkbucket "$W/rgw" bench
printf '[default]\naws_access_key_id = benchkey\naws_secret_access_key = benchsecret0123456789\n' >"$W/creds"
chmod 600 "$W/creds"
{
  printf '[box]\nid = "outage-box"\n[storage]\ndir = "%s"\n' "$W/s"
  printf '[archive]\nendpoint = "%s"\nbucket = "bench"\ncredentials_file = "%s"\n' \
    "$(cat "$W/rgw/endpoint")" "$W/creds"
  for i in $(seq "$N"); do
    printf '[[seat]]\nid = "s%03d"\nmode = "continuous"\nroll_interval_s = %d\n' "$i" "$ROLL"
    printf '[[seat.input]]\nkind = "synthetic"\nseed = %d\nagent_channel = 0\ncustomer_channel = 1\nspeech = "conversation"\n' "$i"
  done
} >"$W/c.toml"
mkdir -p "$W/s"
status() { "$BIN" --config "$W/c.toml" archive status --json; }
field() { python3 -c 'import json,sys; b=json.load(sys.stdin)["backlog"]; print(" ".join(str(b[k]) for k in sys.argv[1:]))' "$@"; }

"$BIN" --config "$W/c.toml" record 2>"$W/rec.log" &
REC=$!
# The recorder makes and migrates the index; the shipper opens it after.
until "$BIN" --config "$W/c.toml" call status >/dev/null 2>&1; do kill -0 "$REC"; sleep 0.2; done
"$BIN" --config "$W/c.toml" ship 2>"$W/ship.log" &
SHIP=$!
alive() { kill -0 "$REC" 2>/dev/null && kill -0 "$SHIP" 2>/dev/null || { tail -n 5 "$W/rec.log" "$W/ship.log"; exit 1; }; }
sleep "$WARM"
alive
t_stop=$(date -u +%Y-%m-%dT%H:%M:%S.000Z)
scripts/rgw.sh stop-rgw "$W/rgw" >/dev/null
t_down=$(date +%s.%N)
peak_calls=0; peak_bytes=0
while python3 -c 'import sys,time; sys.exit(time.time() - float(sys.argv[1]) >= float(sys.argv[2]))' "$t_down" "$T"; do
  read -r c b < <(status | field calls bytes)
  ((c > peak_calls)) && peak_calls=$c; ((b > peak_bytes)) && peak_bytes=$b
  sleep 1
done
# No call may have been confirmed while the store was down.
early=$(sqlite3 "$W/s/callrec.db" "SELECT count(*) FROM archive_uploads WHERE archived_at_utc > '$t_stop' AND archived_at_utc < strftime('%Y-%m-%dT%H:%M:%fZ','now')")
scripts/rgw.sh start-rgw "$W/rgw" >/dev/null
t_back=$(date +%s.%N); t_back_utc=$(date -u +%Y-%m-%dT%H:%M:%S.000Z)
while :; do
  read -r c b age < <(status | field calls bytes oldest_age_s)
  ((c > peak_calls)) && peak_calls=$c; ((b > peak_bytes)) && peak_bytes=$b
  ((age < ROLL)) && break
  alive
  sleep 1
done
t_done=$(date +%s.%N)
read -r shipped shipped_bytes < <(sqlite3 -separator ' ' "$W/s/callrec.db" \
  "SELECT count(*), coalesce(sum(c.bytes), 0) FROM archive_uploads u JOIN calls c ON c.id = u.call_id
   WHERE u.state = 'archived' AND u.archived_at_utc >= '$t_back_utc'")
kill "$REC"; wait "$REC" || true; REC=
kill "$SHIP"; wait "$SHIP" || true; SHIP=
dropped=$(sqlite3 "$W/s/callrec.db" "SELECT coalesce(sum(dropped_frames), 0) FROM calls")
calls=$(sqlite3 "$W/s/callrec.db" "SELECT count(*) FROM calls")
python3 - "$N" "$(python3 -c 'import sys; print(round(float(sys.argv[2]) - float(sys.argv[1])))' "$t_down" "$t_back")" "$ROLL" "$peak_calls" "$peak_bytes" "$t_back" "$t_done" "$shipped" "$shipped_bytes" "$dropped" "$calls" "$early" <<'EOF'
import sys
n, t, roll, pc, pb = (int(x) for x in sys.argv[1:6])
t0, t1 = float(sys.argv[6]), float(sys.argv[7])
shipped, sb, dropped, calls, early = (int(x) for x in sys.argv[8:13])
d = t1 - t0
print("| seats | roll s | outage s | backlog peak calls | backlog peak MB | drain s | drained calls/s | drained MB/s | calls recorded | dropped frames | archived while down |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
print(f"| {n} | {roll} | {t} | {pc} | {pb/1e6:.1f} | {d:.1f} | {shipped/d:.2f} | {sb/1e6/d:.2f} | {calls} | {dropped} | {early} |")
EOF
