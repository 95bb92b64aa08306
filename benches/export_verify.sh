#!/usr/bin/env bash
# benches/export_verify.sh — evidence export and store verification at appliance scale.
#
# WHAT IT MEASURES (wall time of the real `callrec` binary, median of RUNS runs each)
#   a  `callrec export ID --wav` of a one-hour call: the whole bundle (copy + hash of the original,
#      libopus decode of the hour into a 16 kHz 16-bit stereo WAV, manifest, signature, SHA256SUMS,
#      fsyncs, audit row). The WAV's ffprobe duration must be 3600 ± 0.1 s.
#   b  `callrec verify --store` over N (default 10 000) ten-second calls plus the hour: every file
#      re-hashed against its row, every row against its ledger entry, the whole chain, orphan scan.
#      Run warm (files in the page cache) and, when run as root, cold (after drop_caches).
#      It must exit 0: the rows and ledger entries are generated here by a Python script that
#      follows the byte layout documented in src/evidence/ledger.rs, so a pass also shows the
#      layout can be recomputed without callrec.
#   c  a 30 s excerpt from the middle of the hour: `callrec export ID --from 1800 --to 1830`
#      (a complete bundle: the original is copied and hashed too; the excerpt step alone is
#      reported from `--json`'s timings) against `ffmpeg -ss 1800 -i call.opus -t 30 -c copy`
#      in the same run, and their ratio.
#
# THE DATA
#   The hour is `callrec encode` (default 16 kHz, 2 × 16 kbit/s) of benches/.cache/
#   speech_3600s_48k_2ch.wav when encode_vs_opusenc.sh made it, otherwise of fixtures/demo-call.wav
#   repeated to 3600 s; cached as benches/.cache/call_3600s_16k.opus (about a minute to make).
#   The short call is the first 10 s of fixtures/demo-call.wav through `callrec encode`. Calls
#   are copies of it in TMPROOT (about 40 KB each), with `complete` rows and ledger entries.
#
# HOW TO RUN (quiet machine, nothing compiling)
#   benches/export_verify.sh
#   N=1000 RUNS=1 benches/export_verify.sh      # quick smoke test
#
# ENVIRONMENT
#   CALLREC  binary (default <repo>/target/release/callrec; built with cargo -j2 --locked if missing);
#            copied for the run
#   N        short calls in the store (default 10000)
#   RUNS     runs per measurement, median reported (default 3)
#   TMPROOT  where the temporary store is made (default /tmp); removed afterwards unless KEEP=1
#
# Needs: python3, sqlite3, sox, ffmpeg/ffprobe.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
CALLREC=${CALLREC:-$repo/target/release/callrec}
N=${N:-10000}
RUNS=${RUNS:-3}
TMPROOT=${TMPROOT:-/tmp}
KEEP=${KEEP:-0}
cache=$here/.cache

for t in python3 sqlite3 sox ffmpeg ffprobe; do
    command -v "$t" >/dev/null || { echo "needs $t" >&2; exit 1; }
done
if [[ ! -x $CALLREC ]]; then
    (cd "$repo" && cargo build --release -j2 --locked)
fi
mkdir -p "$cache"
[[ -f $here/.gitignore ]] || printf '.cache/\n' >"$here/.gitignore"

work=$(mktemp -d "$TMPROOT/callrec-evidence-bench.XXXXXX")
cleanup() { if [[ $KEEP == 1 ]]; then echo "kept $work" >&2; else rm -rf "$work"; fi; }
trap cleanup EXIT
# A copy: a rebuild of target/ during the run must not change what is measured.
cp "$CALLREC" "$work/callrec"
CALLREC=$work/callrec
store=$work/store
cfg=$work/callrec.toml
printf '[box]\nid = "bench-box"\n[storage]\ndir = "%s"\n' "$store" >"$cfg"
cr() { "$CALLREC" --config "$cfg" "$@"; }

now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$1" "$2"; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# ---------------------------------------------------------------------------------------------
# 1. Audio
demo=$repo/fixtures/demo-call.wav
[[ -f $demo ]] || "$repo/fixtures/make-demo-call.sh" "$demo" >/dev/null
hour=$cache/call_3600s_16k.opus
if [[ ! -f $hour ]]; then
    src=$cache/speech_3600s_48k_2ch.wav
    if [[ ! -f $src ]]; then
        src=$work/hour.wav
        sox "$demo" "$src" repeat 51 trim 0 3600
    fi
    echo "encoding the one-hour call (once, cached in $hour)..." >&2
    cr encode "$src" "$hour.tmp" >/dev/null
    mv "$hour.tmp" "$hour"
fi
sox "$demo" "$work/ten.wav" trim 0 10
cr encode "$work/ten.wav" "$work/ten.opus" >/dev/null

# ---------------------------------------------------------------------------------------------
# 2. Store: schema from callrec's own migrations, the box key, then rows + files + ledger.
cr tokens list >/dev/null
python3 - "$store" "$hour" "$work/ten.opus" "$N" <<'PY'
import datetime, hashlib, json, os, shutil, sqlite3, sys
store, hour, ten, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
db = sqlite3.connect(os.path.join(store, "callrec.db"))
GENESIS = "0" * 64
def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
def entry_hash(seq, kind, call_id, file_sha, detail, prev, at):
    # src/evidence/ledger.rs, "Entry hash: the byte layout (version 1)"
    lines = ["callrec-ledger-v1", str(seq), kind, str(call_id), file_sha or "", detail, prev, at]
    return hashlib.sha256("".join(l + "\n" for l in lines).encode()).hexdigest()
seq, prev = 0, GENESIS
cur = db.cursor()
cur.execute("BEGIN")
def add(call_id, src, duration_ms, started, ended, agent):
    global seq, prev
    rel = f"calls/bench/{call_id // 1000:03d}/{call_id}.opus"
    path = os.path.join(store, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    shutil.copyfile(src, path)
    size, digest = os.path.getsize(path), sha(path)
    row = dict(agent=agent, box_id="bench-box", bytes=size, campaign="bench", direction="inbound",
               duration_ms=duration_ms, ended_at_utc=ended, remote_number="+4930%07d" % call_id,
               seat_id="seat%03d" % (call_id % 128), started_at_utc=started, status="complete")
    cur.execute("""INSERT INTO calls (id, box_id, seat_id, mode, status, started_at_utc, started_mono_ms,
                   ended_at_utc, duration_ms, bytes, sha256, rate_hz, bitrate_bps, agent, direction,
                   remote_number, campaign, rel_path, end_reason)
                   VALUES (?, ?, ?, 'control', 'complete', ?, 0, ?, ?, ?, ?, 16000, 16000, ?, ?, ?, ?, ?, 'stop')""",
                (call_id, row["box_id"], row["seat_id"], started, ended, duration_ms, size, digest, agent,
                 row["direction"], row["remote_number"], row["campaign"], rel))
    # RFC 8785 canonical JSON: sorted keys, no whitespace.
    detail = json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    seq += 1
    at = ended
    e = entry_hash(seq, "call", call_id, digest, detail, prev, at)
    cur.execute("INSERT INTO ledger (seq, kind, call_id, file_sha256, detail, prev_sha256, entry_sha256, at_utc) VALUES (?, 'call', ?, ?, ?, ?, ?, ?)",
                (seq, call_id, digest, detail, prev, e, at))
    prev = e
add(1, hour, 3600000, "2026-11-01T09:00:00.000Z", "2026-11-01T10:00:00.000Z", "alice")
t0 = datetime.datetime(2026, 11, 2, tzinfo=datetime.timezone.utc)
fmt = lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.000Z")
for i in range(n):
    start = t0 + datetime.timedelta(seconds=20 * i)
    add(i + 2, ten, 10000, fmt(start), fmt(start + datetime.timedelta(seconds=10)), "a%d" % (i % 500))
db.commit()
PY
hour_id=1
bytes_hour=$(stat -c %s "$hour")
files_total=$(find "$store/calls" -type f | wc -l)
mb_total=$(du -sm "$store/calls" | cut -f1)

# ---------------------------------------------------------------------------------------------
# 3. Measurements
declare -a a_s b_warm b_cold c_cr c_ff c_step
for r in $(seq 1 "$RUNS"); do
    out=$work/a$r
    t0=$(now); cr export "$hour_id" --out "$out" --wav --json >"$work/a$r.json"; t1=$(now)
    a_s+=("$(elapsed "$t0" "$t1")")
    wav=$out/call-$hour_id/call-$hour_id.wav
    d=$(ffprobe -v error -show_entries format=duration -of default=nw=1:nk=1 "$wav")
    python3 -c "import sys; d=float(sys.argv[1]); assert abs(d-3600)<=0.1, d" "$d"
    (cd "$out/call-$hour_id" && sha256sum -c --quiet SHA256SUMS)
    wav_mb=$(( $(stat -c %s "$wav") / 1000000 ))
    rm -rf "$out"
done
for r in $(seq 1 "$RUNS"); do
    t0=$(now); cr verify --store >"$work/b.txt"; t1=$(now)
    b_warm+=("$(elapsed "$t0" "$t1")")
    if [[ $(id -u) == 0 && -w /proc/sys/vm/drop_caches ]]; then
        sync; echo 3 >/proc/sys/vm/drop_caches
        t0=$(now); cr verify --store >/dev/null; t1=$(now)
        b_cold+=("$(elapsed "$t0" "$t1")")
    fi
done
for r in $(seq 1 "$RUNS"); do
    out=$work/c$r
    t0=$(now); cr export "$hour_id" --out "$out" --from 1800 --to 1830 --json >"$work/c$r.json"; t1=$(now)
    c_cr+=("$(elapsed "$t0" "$t1")")
    c_step+=("$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['exported'][0]['timings_ms']['excerpt_ms']/1000)" "$work/c$r.json")")
    ex=$out/call-$hour_id/call-$hour_id-excerpt-1800-1830.wav
    d=$(ffprobe -v error -show_entries format=duration -of default=nw=1:nk=1 "$ex")
    python3 -c "import sys; d=float(sys.argv[1]); assert abs(d-30)<=0.05, d" "$d"
    rm -rf "$out"
    rm -f "$work/ff.opus"
    t0=$(now); ffmpeg -v error -ss 1800 -i "$store/calls/bench/000/1.opus" -t 30 -c copy "$work/ff.opus"; t1=$(now)
    c_ff+=("$(elapsed "$t0" "$t1")")
done

am=$(median "${a_s[@]}"); bw=$(median "${b_warm[@]}"); cc=$(median "${c_cr[@]}"); cf=$(median "${c_ff[@]}"); cs=$(median "${c_step[@]}")
echo
echo "date $(date -u +%FT%TZ), commit $(cd "$repo" && git rev-parse --short HEAD)$(cd "$repo" && git diff --quiet || echo -dirty), $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p')"
echo
echo "| measurement | median s | runs (s) |"
echo "|---|---|---|"
echo "| a: export of the one-hour call with --wav (${bytes_hour} B opus → ${wav_mb} MB WAV) | $am | ${a_s[*]} |"
echo "| b: verify --store, $((N + 1)) calls, ${files_total} files, ${mb_total} MB, warm cache | $bw | ${b_warm[*]} |"
if ((${#b_cold[@]})); then
    echo "| b: verify --store, same, cold cache (drop_caches) | $(median "${b_cold[@]}") | ${b_cold[*]} |"
fi
echo "| c: callrec export --from 1800 --to 1830 (whole bundle) | $cc | ${c_cr[*]} |"
echo "| c: of which the excerpt step (page walk to 1830 s, decode_window, WAV write + fsync) | $cs | ${c_step[*]} |"
echo "| c: ffmpeg -ss 1800 -i call.opus -t 30 -c copy | $cf | ${c_ff[*]} |"
python3 -c "import sys; a,b,s=map(float,sys.argv[1:4]); print(f'\nratio callrec bundle / ffmpeg: {a/b:.2f}; excerpt step / ffmpeg: {s/b:.2f}')" "$cc" "$cf" "$cs"
echo "timings of the last export with --wav (ms): $(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['exported'][0]['timings_ms'])" "$work/a$RUNS.json")"
tail -n 2 "$work/b.txt" | head -n 1
