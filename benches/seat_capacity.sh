#!/usr/bin/env bash
# benches/seat_capacity.sh — seat capacity, durability latency and memory of `callrec record`.
#
# WHAT IT MEASURES
#   For each seat count N (default: 32 64 96 128 160) the script writes a temporary config with N
#   seats, each `mode = "continuous"` with one synthetic 48 kHz 2-channel input carrying both
#   parties (ch 0 agent, ch 1 customer, seed = seat number, `speech` = INPUT), starts `callrec --config CFG record`
#   in the background, waits WARMUP seconds (default 5), lets it record for DURATION seconds
#   (default 60), then reads `callrec --config CFG call status --json` and the daemon's
#   /proc/PID/status (VmRSS, VmHWM) and /proc/PID/stat (utime+stime over the DURATION window),
#   and stops it with SIGTERM (finalizing every call). Per N it reports:
#     - total dropped frames (sum over seats, since daemon start, warm-up included)
#     - worst lag in the last 60 s (`max_lag_1m_ms`: ring backlog, how far the encoders fell
#       behind capture), read at the end: with WARMUP + DURATION >= 65 s that is the measured
#       window, start-up left out
#     - worst max_lag_ms, a maximum since each seat started: it also holds the start-up of N
#       calls at once (all rings catch up together)
#     - worst max_page_latency_ms (sample entering its ring -> its Ogg page written to the OS)
#     - RSS MB (VmRSS at the end of the run) and peak RSS MB (VmHWM)
#     - CPU % of one core over the DURATION window (can exceed 100 on a multi-core box)
#     - PASS if dropped == 0 and the worst lag in the last 60 s < 200 ms (shorter runs: worst
#       max_lag_ms < 200); page latency is reported, goal <= 1000 ms
#   and finally the largest passing N.
#   After SIGTERM it also checks the store: the daemon must exit 0, one finalized .opus per seat
#   must exist under <store>/calls/, a sample of them (SAMPLE, default 5) must pass `opusinfo`
#   with no WARNING, have an ffprobe duration close to the recorded wall time and match their
#   row's bytes and sha256, every calls row must be `complete`, and `sqlite3 DB 'PRAGMA integrity_check'` must print `ok`. Any of these
#   failing aborts the script (non-zero exit). WARN/ERROR lines of the daemon log are printed.
#
# HOW TO RUN (on a quiet machine: nothing else compiling; the daemon uses every core)
#   benches/seat_capacity.sh                 # full sweep: N = 32 64 96 128 160, 60 s each
#   benches/seat_capacity.sh 128             # one seat count
#   INPUT=conversation benches/seat_capacity.sh 96 128 160 192
#   INPUT=continuous benches/seat_capacity.sh 96 128 160
#   TASKSET=0 WORKERS=1 benches/seat_capacity.sh 48 64 96      # one core
#   DURATION=10 benches/seat_capacity.sh 8 16   # quick smoke test
#
# ENVIRONMENT
#   CALLREC    callrec binary (default: <repo>/target/release/callrec)
#   DURATION   measured seconds per N (default 60)
#   WARMUP     seconds after the control socket appears before measuring (default 5)
#   SAMPLE     how many produced files per N to check with opusinfo/ffprobe (default 5)
#   WORKERS    [box] workers in the generated config (default 0 = one per core)
#   COMPLEXITY [encoder] complexity in the generated config (default 5, callrec's default)
#   INPUT      what each seat's synthetic input plays (`speech` in the config, see src/capture/synth.rs):
#              conversation (default) a realistic call: each party talks 35-50 % of the time,
#                           short overlaps and pauses, office noise (agent), line noise (customer)
#              continuous   both parties talk all the time over the same noise: the worst case
#              turns        the generator this bench used before issue 9 (turns over digital
#                           silence); the only one a callrec older than issue 9 understands
#   QUIET      [encoder] quiet_frames (src/codec/quiet.rs): encode (callrec's default: every frame
#              encoded alike), low (a party's quiet frames at complexity 0) or dtx (quiet frames
#              skip the encoder); unset = the binary's default
#   RATE       the synthetic inputs' capture rate_hz; unset = left out of the config, so the
#              recorder captures at the encoder's rate (16000, no resampling; src/capture/rate.rs);
#              RATE=48000 = every figure before issue 9 item 3 (48 kHz capture, resampled)
#   TASKSET    CPU list to pin the daemon to (e.g. 0 for one core); unset = all cores
#   TMPROOT    where temporary stores are created (default /tmp); each is removed afterwards
#   KEEP=1     keep the temporary stores and daemon logs (their paths are printed)
#
# Needs: python3, sqlite3, opusinfo, ffprobe (checked below).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
CALLREC=${CALLREC:-$repo/target/release/callrec}
DURATION=${DURATION:-60}
WARMUP=${WARMUP:-5}
SAMPLE=${SAMPLE:-5}
WORKERS=${WORKERS:-0}
COMPLEXITY=${COMPLEXITY:-5}
INPUT=${INPUT:-conversation}
QUIET=${QUIET:-}
RATE=${RATE:-}
TASKSET=${TASKSET:-}
TMPROOT=${TMPROOT:-/tmp}
KEEP=${KEEP:-0}
if [[ $# -gt 0 ]]; then SEATS=("$@"); else SEATS=(32 64 96 128 160); fi

die() { echo "seat_capacity: FAIL: $*" >&2; exit 1; }
log() { echo "seat_capacity: $*" >&2; }

for tool in python3 sqlite3 opusinfo ffprobe; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install -y python3 sqlite3 opus-tools ffmpeg)"
done
case $INPUT in conversation | continuous | turns) ;; *) die "INPUT must be conversation, continuous or turns" ;; esac
case $QUIET in "" | dtx | low | encode) ;; *) die "QUIET must be dtx, low or encode" ;; esac
for v in DURATION WARMUP SAMPLE WORKERS; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer"
done
[[ $DURATION -gt 0 ]] || die "DURATION must be > 0"
for n in "${SEATS[@]}"; do
    [[ $n =~ ^[0-9]+$ && $n -gt 0 && $n -le 999 ]] || die "seat count '$n' must be 1..999"
done

# The binary is rebuilt by others from time to time; wait for it rather than fail at once.
for i in $(seq 1 60); do
    [[ -x $CALLREC ]] && break
    log "waiting for $CALLREC to appear ($i/60)"
    sleep 5
done
[[ -x $CALLREC ]] || die "$CALLREC not found; build it with: cargo build --release"

CLK_TCK=$(getconf CLK_TCK)
NCPU=$(nproc)

# State of the run in progress, so the EXIT trap can stop the daemon and clean up.
pid=""
tmp=""
cleanup() {
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    if [[ -n $tmp && -d $tmp ]]; then
        if [[ $KEEP == 1 ]]; then log "kept $tmp"; else rm -rf "$tmp"; fi
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# utime + stime of a process, in clock ticks.
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
# A field of /proc/PID/status in kB.
proc_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

write_config() {
    local cfg=$1 store=$2 n=$3 i
    {
        printf '[box]\nid = "bench"\nworkers = %d\n\n[storage]\ndir = "%s"\n\n[encoder]\ncomplexity = %d\n' "$WORKERS" "$store" "$COMPLEXITY"
        [[ -z $QUIET ]] || printf 'quiet_frames = "%s"\n' "$QUIET"
        for ((i = 1; i <= n; i++)); do
            printf '\n[[seat]]\nid = "seat%03d"\nmode = "continuous"\nroll_interval_s = 3600\n' "$i"
            printf '[[seat.input]]\nkind = "synthetic"\nseed = %d\nagent_channel = 0\ncustomer_channel = 1\n' "$i"
            [[ $INPUT == turns ]] || printf 'speech = "%s"\n' "$INPUT"
            [[ -z $RATE ]] || printf 'rate_hz = %d\n' "$RATE"
        done
    } >"$cfg"
}

declare -a ROWS=()
declare -a NOTES=()
best=""

for n in "${SEATS[@]}"; do
    tmp=$(mktemp -d "$TMPROOT/callrec-seatcap.XXXXXX")
    store=$tmp/store cfg=$tmp/callrec.toml daemon_log=$tmp/daemon.log
    write_config "$cfg" "$store" "$n"
    if ! chk=$("$CALLREC" --config "$cfg" config check 2>&1); then echo "$chk" >&2; die "N=$n: generated config rejected"; fi

    log "N=$n: starting recorder (warm-up ${WARMUP} s, run ${DURATION} s)"
    if [[ -n $TASKSET ]]; then
        taskset -c "$TASKSET" "$CALLREC" --config "$cfg" record >"$daemon_log" 2>&1 &
    else
        "$CALLREC" --config "$cfg" record >"$daemon_log" 2>&1 &
    fi
    pid=$!
    sock=$store/control.sock
    for _ in $(seq 1 300); do
        [[ -S $sock ]] && break
        kill -0 "$pid" 2>/dev/null || { cat "$daemon_log" >&2; die "N=$n: recorder exited during start-up"; }
        sleep 0.1
    done
    [[ -S $sock ]] || { cat "$daemon_log" >&2; die "N=$n: control socket $sock did not appear within 30 s"; }
    t_start=$EPOCHREALTIME

    sleep "$WARMUP"
    kill -0 "$pid" 2>/dev/null || { cat "$daemon_log" >&2; die "N=$n: recorder died during warm-up"; }
    status_warm=$("$CALLREC" --config "$cfg" call status --json) || die "N=$n: call status failed after warm-up"
    ticks0=$(cpu_ticks "$pid")
    t0=$EPOCHREALTIME

    sleep "$DURATION"
    kill -0 "$pid" 2>/dev/null || { cat "$daemon_log" >&2; die "N=$n: recorder died during the run"; }
    ticks1=$(cpu_ticks "$pid")
    t1=$EPOCHREALTIME
    rss_kb=$(proc_kb "$pid" VmRSS)
    hwm_kb=$(proc_kb "$pid" VmHWM)
    threads=$(proc_kb "$pid" Threads)
    status_end=$("$CALLREC" --config "$cfg" call status --json) || die "N=$n: call status failed"

    t_term=$EPOCHREALTIME
    kill -TERM "$pid"
    rc=0
    wait "$pid" || rc=$?
    t_exit=$EPOCHREALTIME
    pid=""
    [[ $rc -eq 0 ]] || { tail -n 40 "$daemon_log" >&2; die "N=$n: recorder exited with status $rc after SIGTERM"; }

    # --- Store checks (after SIGTERM every call is finalized) ---------------------------------
    db=$store/callrec.db
    [[ -f $db ]] || die "N=$n: no database at $db"
    integrity=$(sqlite3 "$db" 'PRAGMA integrity_check')
    [[ $integrity == ok ]] || die "N=$n: PRAGMA integrity_check: $integrity"
    mapfile -t files < <(find "$store/calls" -name '*.opus' -type f 2>/dev/null | sort)
    [[ ${#files[@]} -eq $n ]] || die "N=$n: expected $n .opus files under $store/calls, found ${#files[@]}"
    rows=$(sqlite3 "$db" "SELECT status || ' ' || count(*) FROM calls GROUP BY status" | paste -sd, -)
    not_complete=$(sqlite3 "$db" "SELECT count(*) FROM calls WHERE status <> 'complete'")
    [[ $not_complete -eq 0 ]] || die "N=$n: calls rows not complete after SIGTERM: $rows"
    db_dropped=$(sqlite3 "$db" "SELECT coalesce(sum(dropped_frames), 0) FROM calls")
    # Sample: first, last and evenly spaced files in between.
    sample_durs=()
    step=$(((${#files[@]} + SAMPLE - 1) / (SAMPLE > 0 ? SAMPLE : 1)))
    [[ $step -ge 1 ]] || step=1
    for ((i = 0; i < ${#files[@]} && SAMPLE > 0; i += step)); do
        f=${files[$i]}
        info=$(opusinfo "$f" 2>&1) || { echo "$info" >&2; die "N=$n: opusinfo rejected $f"; }
        if grep -qi WARNING <<<"$info"; then grep -i WARNING <<<"$info" >&2; die "N=$n: opusinfo warnings for $f"; fi
        d=$(ffprobe -v error -show_entries format=duration -of default=nw=1:nk=1 "$f") || die "N=$n: ffprobe rejected $f"
        sample_durs+=("$d")
        # The row's size and SHA-256 must describe the finalized file.
        rel=${f#"$store"/}
        row_db=$(sqlite3 "$db" "SELECT bytes || ' ' || coalesce(sha256, '-') FROM calls WHERE rel_path = '$rel'")
        [[ $row_db == "$(stat -c %s "$f") $(sha256sum "$f" | cut -d' ' -f1)" ]] ||
            die "N=$n: $rel: calls row says '$row_db', file differs"
    done

    # Daemon log: anything above INFO is worth a look.
    log_issues=$(sed 's/\x1b\[[0-9;]*m//g' "$daemon_log" | grep -E 'WARN|ERROR|panic' | head -n 20 || true)

    # --- Summarise ---------------------------------------------------------------------------
    # Storage: every file's bytes over every file's recorded duration (rows, from the index).
    store_bytes_ms=$(sqlite3 "$db" "SELECT coalesce(sum(bytes), 0) || ' ' || coalesce(sum(duration_ms), 0) FROM calls")
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    row=$(python3 - "$n" "$status_warm" "$status_end" "$ticks0" "$ticks1" "$CLK_TCK" "$t0" "$t1" \
        "$rss_kb" "$hwm_kb" "$t_start" "$t_term" "$t_exit" "$db_dropped" "$store_bytes_ms" "$load" "$WARMUP" "${sample_durs[@]}" <<'EOF'
import json, sys
a = sys.argv[1:]
n = int(a[0]); warm = json.loads(a[1]); end = json.loads(a[2])
ticks0, ticks1, hz = int(a[3]), int(a[4]), int(a[5])
t0, t1 = float(a[6]), float(a[7])
rss_kb, hwm_kb = int(a[8]), int(a[9])
t_start, t_term, t_exit = float(a[10]), float(a[11]), float(a[12])
db_dropped = int(a[13]); store_bytes, store_ms = (int(x) for x in a[14].split())
load = a[15]; durs = [float(x) for x in a[17:]]
# The seats' worst lag of the last minute (`max_lag_1m_ms`) covers only the measured window
# when warm-up + run >= 65 s: then the start-up of N calls at once, which `max_lag_ms` (a
# maximum since the seat started) also holds, is left out.
# A callrec older than issue 9 item 4 has no `max_lag_1m_ms`: judged on max_lag_ms then.
steady = float(a[16]) + (t1 - t0) >= 65 and all("max_lag_1m_ms" in s for s in end)
problems = []
if len(end) != n:
    problems.append(f"status lists {len(end)} seats, expected {n}")
not_rec = [s["seat"] for s in end if s["state"] != "recording"]
if not_rec:
    problems.append(f"{len(not_rec)} seat(s) not recording: {', '.join(not_rec[:5])}")
down = [s["seat"] for s in end if s.get("inputs_down")]
if down:
    problems.append(f"inputs down on {len(down)} seat(s): {', '.join(down[:5])}")
dropped = sum(s["dropped_frames"] for s in end)
dropped_warm = sum(s["dropped_frames"] for s in warm)
max_lag = max(s["max_lag_ms"] for s in end)
window_lag = max(s.get("max_lag_1m_ms", -1) for s in end)
max_page = max(s["max_page_latency_ms"] for s in end)
worst_lag_seat = max(end, key=lambda s: s["max_lag_ms"])["seat"]
cpu = (ticks1 - ticks0) / hz / (t1 - t0) * 100
ok = dropped == 0 and (window_lag if steady else max_lag) < 200
# Files should hold (about) the wall time between the socket appearing and SIGTERM.
rec_s = t_term - t_start
dur_note = ""
if durs:
    dur_note = f"sampled file durations {min(durs):.1f}-{max(durs):.1f} s vs {rec_s:.1f} s wall"
    if min(durs) < rec_s - 2.0 or max(durs) > rec_s + 5.0:
        problems.append(f"file duration {min(durs):.1f}-{max(durs):.1f} s does not match {rec_s:.1f} s of recording")
mb = lambda kb: f"{kb / 1024:.1f}"
mb_per_hour = store_bytes / 1e6 / (store_ms / 3.6e6) if store_ms else 0.0
window_cell = f"{window_lag}" if steady else "n/a"
print(f"| {n} | {dropped} | {window_cell} | {max_lag} | {max_page} | {mb(rss_kb)} | {mb(hwm_kb)} | {cpu:.0f} | {cpu / n:.2f} | {mb_per_hour:.1f} | {load} | {'PASS' if ok else 'FAIL'} |")
warm_max = max((s["max_lag_ms"] for s in warm), default=0)
notes = [f"dropped by end of warm-up {dropped_warm}, in DB rows {db_dropped}",
         f"worst max_lag_ms at the end of warm-up {warm_max} ms",
         f"worst lag on {worst_lag_seat}", dur_note, f"SIGTERM->exit {t_exit - t_term:.1f} s",
         f"page latency {'<=' if max_page <= 1000 else '>'} 1000 ms goal"]
print("; ".join(x for x in notes if x))
print("; ".join(problems) if problems else "")
print("1" if ok else "0")
EOF
    ) || die "N=$n: could not summarise the status JSON: $status_end"
    mapfile -t parts <<<"$row"
    ROWS+=("${parts[0]}")
    NOTES+=("N=$n: ${parts[1]}; threads $threads; calls rows: $rows")
    if [[ -n ${parts[2]} ]]; then NOTES+=("N=$n: PROBLEM: ${parts[2]}"); fi
    if [[ -n $log_issues ]]; then
        NOTES+=("N=$n: daemon log WARN/ERROR lines (first 20):")
        while IFS= read -r l; do NOTES+=("    $l"); done <<<"$log_issues"
    fi
    if [[ ${parts[3]} == 1 ]] && [[ -z $best || $n -gt $best ]]; then best=$n; fi
    log "N=$n: ${parts[0]}"
    [[ -z ${parts[2]} ]] || log "N=$n: PROBLEM: ${parts[2]}"

    if [[ $KEEP == 1 ]]; then log "kept $tmp (config, daemon.log, store)"; else rm -rf "$tmp"; fi
    tmp=""
done

echo
echo "### Seat capacity — INPUT=$INPUT, QUIET=${QUIET:-default}, synthetic 2-ch inputs at ${RATE:-the encoder rate}, continuous mode, ${DURATION} s after ${WARMUP} s warm-up, $NCPU CPU(s)${TASKSET:+ (taskset -c $TASKSET)}, workers = $WORKERS, encoder complexity = $COMPLEXITY"
echo
echo "| seats | dropped frames | worst lag in the last 60 s, ms | worst max_lag_ms since start | worst max_page_latency_ms | RSS MB | peak RSS MB | CPU % | CPU % per seat | MB per call-hour | load avg at end (1/5/15 min) | result |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
echo
printf -- '- %s\n' "${NOTES[@]}"
echo
echo "PASS = 0 dropped frames and the worst lag in the last 60 s < 200 ms (runs of WARMUP + DURATION >= 65 s, so the window leaves out start-up), else worst max_lag_ms since start < 200. CPU % is of one core (max $((NCPU * 100)))."
echo "Store checks passed for every N: clean exit on SIGTERM, one complete .opus per seat, opusinfo/ffprobe and row size/SHA-256 on a sample, PRAGMA integrity_check = ok."
if [[ -n $best ]]; then echo "Largest passing N: $best"; else echo "Largest passing N: none"; fi
