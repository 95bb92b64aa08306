#!/usr/bin/env bash
# benches/stream_vs_nginx.sh — audio streaming: callrec's /api/calls/{id}/audio vs nginx serving
# the same files, 200 concurrent clients fetching 64 KiB byte ranges on loopback.
#
# WHAT IT MEASURES
#   Throughput (requests/s) and latency (p50/p99/max) of `wrk -t2 -c200 -d15s --latency` with a Lua
#   script that, for every request, picks a random call id (1..CALLS) and a random 64 KiB range
#   (`Range: bytes=a-b`, a uniform in 0..len-65536) of that call's recording, against
#     callrec  GET /api/calls/{id}/audio with the session cookie of a logged-in `qa` user
#              (`callrec serve`, plain HTTP on 127.0.0.1: session lookup, call row, `play` audit
#              on the first fetch of each call in the session, file open + seek + read per request)
#     nginx    GET /calls/bench/{id}.opus, the same files (storage dir as document root), its own
#              instance with a temporary config: worker_processes auto, sendfile on, access_log off,
#              tcp_nopush off (see the config below), keepalive_requests 1000000 (so neither
#              server closes wrk's connections)
#   with identical wrk parameters, after a 3 s warm-up of each. ROUNDS (default 3) rounds,
#   nginx and callrec alternating; the median round of each is reported, with the ratio
#   callrec/nginx of requests/s. The Lua script counts every answer that is not 206 or whose body
#   is not 65536 bytes; any such answer, or a wrk socket error, is reported (and fails the goal).
#   Also reported: CPU % of each server over its runs (utime+stime from /proc, one core = 100) —
#   wrk runs on the same 2 cores, so both servers share the machine with the client — wrk's own
#   CPU %, and "other": the machine's busy time (/proc/stat) minus server and wrk, i.e. whatever
#   else ran (another build or test run skews the figures; a rustc seen during a run is noted).
#   Goal (RESULTS.md): callrec >= 50 % of nginx's requests/s, and callrec p99 < 50 ms.
#
# THE RECORDINGS
#   One 60 s two-party WAV (48 kHz, 2 channels, espeak-ng speech: agent on ch 0 in the first half,
#   customer on ch 1 in the second) encoded once with `callrec encode` (default 16 kHz, 16 kbit/s
#   per party) and cached in benches/.cache/stream_60s.opus. Each run copies it to
#   <store>/calls/bench/<id>.opus for ids 1..CALLS and inserts matching `calls` rows (status
#   complete, bytes and sha256 of the file, rel_path pointing at the copy) into a fresh index
#   whose schema comes from `callrec users add`.
#
# HOW TO RUN (on a quiet machine: nothing compiling; wrk and the server share the cores)
#   benches/stream_vs_nginx.sh                          # 3 rounds of 15 s per server
#   DURATION=5 ROUNDS=1 benches/stream_vs_nginx.sh      # quick smoke test
#
# ENVIRONMENT
#   CALLREC      callrec binary (default: <repo>/target/release/callrec; built with
#                `cargo build --release -j2 --locked` if missing). It is copied for the run.
#   CALLS        number of calls/recordings (default 50)
#   THREADS      wrk -t (default 2)      CONNECTIONS  wrk -c (default 200)
#   DURATION     wrk -d in seconds per measured run (default 15)
#   ROUNDS       measured rounds per server, median reported (default 3)
#   RANGE_BYTES  bytes per request (default 65536)
#   TMPROOT      where the temporary store is made (default /tmp); removed afterwards
#   KEEP=1       keep it (configs, logs, Lua scripts, raw wrk output; path printed)
#
# Needs: wrk, nginx (apt-get installs them when run as root), curl, sqlite3, python3, sox,
# espeak-ng (for the first run only).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
CALLREC=${CALLREC:-$repo/target/release/callrec}
CALLS=${CALLS:-50}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-200}
DURATION=${DURATION:-15}
ROUNDS=${ROUNDS:-3}
RANGE_BYTES=${RANGE_BYTES:-65536}
TMPROOT=${TMPROOT:-/tmp}
KEEP=${KEEP:-0}
PASSWORD="bench password 1234"
GOAL_RATIO=0.5
GOAL_P99_MS=50

die() { echo "stream_vs_nginx: FAIL: $*" >&2; exit 1; }
log() { echo "stream_vs_nginx: $*" >&2; }

for v in CALLS THREADS CONNECTIONS DURATION ROUNDS RANGE_BYTES; do
    [[ ${!v} =~ ^[0-9]+$ && ${!v} -gt 0 ]] || die "$v must be a positive integer"
done

# wrk and nginx are not in the Makefile's deps; install them like `make deps` does.
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
if [[ ${#missing[@]} -gt 0 ]]; then
    if [[ $(id -u) == 0 ]]; then
        log "installing: ${missing[*]}"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}") >/dev/null ||
            die "apt-get install ${missing[*]} failed"
    else
        die "missing packages; run:  sudo apt-get install -y ${missing[*]}"
    fi
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
for tool in wrk curl sqlite3 python3 sha256sum; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install -y $tool)"
done

if [[ ! -x $CALLREC ]]; then
    log "building callrec (cargo build --release -j2 --locked)"
    (cd "$repo" && cargo build --release -j2 --locked) >&2 || die "cargo build failed"
fi
[[ -x $CALLREC ]] || die "$CALLREC not found"

tmp=$(mktemp -d "$TMPROOT/callrec-stream.XXXXXX")
cr_pid=""
ng_pid=""
stop_pid() { # pid signal
    local p=$1
    [[ -n $p ]] && kill -0 "$p" 2>/dev/null || return 0
    kill "-$2" "$p" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
}
cleanup() {
    [[ -z ${watch_pid:-} ]] || kill "$watch_pid" 2>/dev/null || true
    stop_pid "$cr_pid" TERM
    stop_pid "$ng_pid" QUIT
    if [[ $KEEP == 1 ]]; then log "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

# Seconds during which a compiler (rustc) ran, sampled once a second while a measurement runs:
# another build on the 2 cores skews every figure, so the report says when one was seen.
watch_pid=""
watch_start() { # file
    ( while :; do pgrep -x rustc >/dev/null && echo busy; sleep 1; done ) >"$1" 2>/dev/null &
    watch_pid=$!
}
watch_stop() { # file -> sets busy_s to the number of busy seconds
    if [[ -n $watch_pid ]]; then
        { kill "$watch_pid" && wait "$watch_pid"; } 2>/dev/null || true
    fi
    watch_pid=""
    busy_s=$(wc -l <"$1")
}
trap 'exit 130' INT TERM

cp "$CALLREC" "$tmp/callrec"
BIN=$tmp/callrec
commit=$(cd "$repo" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -z $(cd "$repo" && git status --porcelain --untracked-files=no 2>/dev/null) ]] || commit="$commit-dirty"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# --- The recording (cached) ---------------------------------------------------------------------
mkdir -p "$here/.cache"
opus=$here/.cache/stream_60s.opus
printf '[box]\nid = "bench"\n\n[storage]\ndir = "%s"\n' "$tmp/enc" >"$tmp/encode.toml"
if [[ ! -f $opus ]]; then
    for tool in espeak-ng sox soxi; do command -v "$tool" >/dev/null || die "$tool not found (apt-get install -y espeak-ng sox)"; done
    log "making the 60 s test recording (once)"
    espeak-ng -v en-us -s 150 -w "$tmp/agent.wav" \
        "Good morning, thank you for calling customer support, my name is Alex. How can I help you today? \
I can see your account here. Let me check the last invoice for you. It looks like the payment was received \
on the third, so the reminder you got was sent in error. I will make a note on your account and cancel it."
    espeak-ng -v en-gb+f3 -s 150 -w "$tmp/customer.wav" \
        "Hello, yes, I received a payment reminder yesterday, but I am quite sure that I paid the invoice \
last week. Could you please check that for me? Thank you, that is good to hear. Will I get a confirmation \
by email? Great. Then that is all, thank you very much for your help. Goodbye."
    # pad (start, end) and trim in separate sox runs: in one chain sox warns and skips the end pad.
    sox "$tmp/agent.wav" -r 48000 -b 16 "$tmp/a_pad.wav" pad 0.5 60
    sox "$tmp/customer.wav" -r 48000 -b 16 "$tmp/c_pad.wav" pad 30 60
    sox "$tmp/a_pad.wav" "$tmp/a48.wav" trim 0 60
    sox "$tmp/c_pad.wav" "$tmp/c48.wav" trim 0 60
    sox -M "$tmp/a48.wav" "$tmp/c48.wav" "$tmp/call.wav"
    [[ $(soxi -D "$tmp/call.wav") == 60.000000 && $(soxi -c "$tmp/call.wav") == 2 && $(soxi -r "$tmp/call.wav") == 48000 ]] ||
        die "the test WAV is not 60 s, 2 channels, 48 kHz"
    "$BIN" --config "$tmp/encode.toml" encode "$tmp/call.wav" "$tmp/call.opus" >/dev/null ||
        die "callrec encode failed"
    mv "$tmp/call.opus" "$opus"
fi
LEN=$(stat -c %s "$opus")
SHA=$(sha256sum "$opus" | cut -d' ' -f1)
[[ $LEN -gt $RANGE_BYTES ]] || die "$opus ($LEN bytes) is not longer than one range ($RANGE_BYTES)"

# --- Store: CALLS copies and their rows -----------------------------------------------------------
store=$tmp/store
mkdir -p "$store/calls/bench"
CR_PORT=$(free_port)
NG_PORT=$(free_port)
[[ $CR_PORT != "$NG_PORT" ]] || NG_PORT=$((CR_PORT + 1))
CFG=$tmp/callrec.toml
printf '[box]\nid = "bench"\n\n[storage]\ndir = "%s"\n\n[server]\nbind = "127.0.0.1:%s"\ntls = false\n' "$store" "$CR_PORT" >"$CFG"
echo "$PASSWORD" | "$BIN" --config "$CFG" users add bench --role qa --password-stdin >/dev/null ||
    die "callrec users add failed"
for ((i = 1; i <= CALLS; i++)); do cp "$opus" "$store/calls/bench/$i.opus"; done
sqlite3 "$store/callrec.db" >/dev/null <<EOF || die "inserting the call rows failed"
.bail on
BEGIN;
WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < $CALLS)
INSERT INTO calls (id, box_id, seat_id, mode, status, started_at_utc, started_mono_ms, ended_at_utc,
                   duration_ms, bytes, sha256, rate_hz, bitrate_bps, agent, direction, remote_number,
                   campaign, rel_path, end_reason)
SELECT i, 'bench', 'seat001', 'control', 'complete',
       strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-' || (2 * i) || ' minutes'), i * 120000,
       strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-' || (2 * i - 1) || ' minutes'),
       60000, $LEN, '$SHA', 16000, 16000, 'a' || (i % 10), 'inbound', '+4930' || (1000000 + i),
       'camp01', 'calls/bench/' || i || '.opus', 'stop'
FROM seq;
COMMIT;
EOF

# --- callrec serve + login --------------------------------------------------------------------------
"$BIN" --config "$CFG" serve >"$tmp/serve.log" 2>&1 &
cr_pid=$!
CR=http://127.0.0.1:$CR_PORT
for _ in $(seq 1 200); do
    curl -fsS -o /dev/null "$CR/healthz" 2>/dev/null && break
    kill -0 "$cr_pid" 2>/dev/null || { cat "$tmp/serve.log" >&2; die "callrec serve exited during start-up"; }
    sleep 0.1
done
curl -fsS -o /dev/null "$CR/healthz" || { cat "$tmp/serve.log" >&2; die "no /healthz from callrec within 20 s"; }
JAR=$tmp/cookies.txt
csrf=$(curl -fsS -c "$JAR" "$CR/login" | sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p' | head -n 1)
[[ -n $csrf ]] || die "no csrf field in the login page"
code=$(curl -sS -o /dev/null -w '%{http_code}' -b "$JAR" -c "$JAR" \
    --data-urlencode username=bench --data-urlencode "password=$PASSWORD" \
    --data-urlencode "csrf=$csrf" --data-urlencode next=/calls "$CR/login")
[[ $code == 303 ]] || die "POST /login answered $code, expected 303"
SESSION=$(awk '$6 == "callrec_session" { print $7 }' "$JAR")
[[ -n $SESSION ]] || die "no session cookie after login"

# --- nginx on another loopback port --------------------------------------------------------------
ngx=$tmp/nginx
mkdir -p "$ngx/tmp"
user_line=""
[[ $(id -u) != 0 ]] || user_line="user $(id -un) $(id -gn);" # workers keep our user (the store is 0700)
cat >"$ngx/nginx.conf" <<EOF
$user_line
worker_processes auto;
daemon off;
pid $ngx/nginx.pid;
error_log $ngx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    # tcp_nopush stays off (nginx's default): with it (TCP_CORK) 64 KiB answers on loopback see
    # ~40 ms stalls, p99 47 ms instead of 11 ms and requests/s swinging 9k-21k between runs.
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    types { audio/ogg opus; }
    default_type application/octet-stream;
    client_body_temp_path $ngx/tmp/body;
    proxy_temp_path $ngx/tmp/proxy;
    fastcgi_temp_path $ngx/tmp/fastcgi;
    uwsgi_temp_path $ngx/tmp/uwsgi;
    scgi_temp_path $ngx/tmp/scgi;
    server {
        listen 127.0.0.1:$NG_PORT;
        root $store;
        location /calls/ { }
    }
}
EOF
"$NGINX" -t -q -p "$ngx" -c "$ngx/nginx.conf" -e "$ngx/error.log" || die "nginx -t rejected $ngx/nginx.conf"
"$NGINX" -p "$ngx" -c "$ngx/nginx.conf" -e "$ngx/error.log" &
ng_pid=$!
NG=http://127.0.0.1:$NG_PORT
for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "$NG/calls/bench/1.opus" 2>/dev/null && break
    kill -0 "$ng_pid" 2>/dev/null || { cat "$ngx/error.log" >&2; die "nginx exited during start-up"; }
    sleep 0.1
done

# Both must answer the same bytes for the same range.
for url in "$CR/api/calls/7/audio" "$NG/calls/bench/7.opus"; do
    code=$(curl -sS -b "$JAR" -H "Range: bytes=1000-66535" -o "$tmp/probe" -w '%{http_code}' "$url")
    [[ $code == 206 ]] || die "$url answered $code to a Range request, expected 206"
    cmp -s "$tmp/probe" <(tail -c +1001 "$opus" | head -c 65536) || die "$url: wrong bytes for the range"
done

# --- wrk Lua scripts ----------------------------------------------------------------------------
write_lua() { # file path_format cookie
    cat >"$1" <<EOF
-- generated by benches/stream_vs_nginx.sh
local n_ids, len, span = $CALLS, $LEN, $RANGE_BYTES
local path_fmt, cookie = "$2", "$3"
local threads, nthreads = {}, 0
function setup(thread)
    nthreads = nthreads + 1
    thread:set("tid", nthreads)
    table.insert(threads, thread)
end
function init(args)
    math.randomseed(7919 * tid)
    ok, bad, short, last_bad = 0, 0, 0, 0
end
function request()
    local a = math.random(0, len - span)
    local h = { ["Range"] = "bytes=" .. a .. "-" .. (a + span - 1) }
    if cookie ~= "" then h["Cookie"] = cookie end
    return wrk.format("GET", string.format(path_fmt, math.random(1, n_ids)), h)
end
function response(status, headers, body)
    if status ~= 206 then
        bad = bad + 1
        last_bad = status
    elseif #body ~= span then
        short = short + 1
    else
        ok = ok + 1
    end
end
function done(summary, latency, requests)
    local ok, bad, short, last_bad = 0, 0, 0, 0
    for _, t in ipairs(threads) do
        ok = ok + t:get("ok")
        bad = bad + t:get("bad")
        short = short + t:get("short")
        if t:get("last_bad") ~= 0 then last_bad = t:get("last_bad") end
    end
    local e = summary.errors
    io.write(string.format("RESULT requests=%d duration_us=%d bytes=%d ok206=%d non206=%d short=%d last_non206=%d "
        .. "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d "
        .. "p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
        summary.requests, summary.duration, summary.bytes, ok, bad, short, last_bad,
        e.connect, e.read, e.write, e.status, e.timeout,
        latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
EOF
}
write_lua "$tmp/callrec.lua" "/api/calls/%d/audio" "callrec_session=$SESSION"
write_lua "$tmp/nginx.lua" "/calls/bench/%d.opus" ""

# utime + stime (clock ticks) of a process and its children threads; for nginx, of its workers.
cpu_ticks() {
    local t=0 p
    for p in "$@"; do
        [[ -r /proc/$p/stat ]] || continue
        t=$((t + $(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat")))
    done
    echo "$t"
}
server_pids() { # name
    if [[ $1 == callrec ]]; then echo "$cr_pid"; else echo "$ng_pid" $(pgrep -P "$ng_pid" || true); fi
}
CLK_TCK=$(getconf CLK_TCK)

# Busy ticks of the whole machine (user nice system irq softirq steal) from /proc/stat.
machine_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }

run_wrk() { # name url lua duration out
    local name=$1 url=$2 lua=$3 dur=$4 out=$5 pids c0 c1 m0 m1 t0 t1 wrk_cpu
    read -r -a pids <<<"$(server_pids "$name")"
    c0=$(cpu_ticks "${pids[@]}")
    m0=$(machine_ticks)
    watch_start "$out.busy"
    t0=$EPOCHREALTIME
    # bash's `time` gives wrk's own user + sys seconds, so that what else ran can be derived.
    wrk_cpu=$( { TIMEFORMAT='%U %S'; time wrk -t"$THREADS" -c"$CONNECTIONS" -d"${dur}s" --timeout 10s --latency \
        -s "$lua" "$url" >"$out" 2>&1; } 2>&1 ) || { cat "$out" >&2; die "wrk against $name failed"; }
    t1=$EPOCHREALTIME
    c1=$(cpu_ticks "${pids[@]}")
    m1=$(machine_ticks)
    watch_stop "$out.busy"
    echo "CPU ticks=$((c1 - c0)) hz=$CLK_TCK wall=$(python3 -c "print($t1 - $t0)") busy_s=$busy_s machine_ticks=$((m1 - m0)) wrk_s=$(awk '{ print $1 + $2 }' <<<"$wrk_cpu")" >>"$out"
    grep -q '^RESULT ' "$out" || { cat "$out" >&2; die "no RESULT line from wrk against $name"; }
}

log "warm-up: 3 s each"
run_wrk nginx "$NG" "$tmp/nginx.lua" 3 "$tmp/warm_nginx.txt"
run_wrk callrec "$CR" "$tmp/callrec.lua" 3 "$tmp/warm_callrec.txt"
for ((r = 1; r <= ROUNDS; r++)); do
    for name in nginx callrec; do
        if [[ $name == nginx ]]; then url=$NG; else url=$CR; fi
        log "round $r/$ROUNDS: $name, wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s"
        run_wrk "$name" "$url" "$tmp/$name.lua" "$DURATION" "$tmp/run_${name}_$r.txt"
        log "  $(grep '^RESULT ' "$tmp/run_${name}_$r.txt")"
        kill -0 "$cr_pid" 2>/dev/null || { tail -n 20 "$tmp/serve.log" >&2; die "callrec serve died"; }
        kill -0 "$ng_pid" 2>/dev/null || { tail -n 20 "$ngx/error.log" >&2; die "nginx died"; }
    done
done
cr_threads=$(awk '$1 == "Threads:" { print $2 }' "/proc/$cr_pid/status")
cr_rss=$(awk '$1 == "VmHWM:" { print int($2 / 1024) }' "/proc/$cr_pid/status")
plays=$(sqlite3 "$store/callrec.db" "SELECT count(*) FROM audit WHERE action = 'play'")
stop_pid "$cr_pid" TERM
cr_pid=""
stop_pid "$ng_pid" QUIT
ng_pid=""
log_issues=$(sed 's/\x1b\[[0-9;]*m//g' "$tmp/serve.log" | grep -E 'WARN|ERROR|panic' | grep -v 'TLS is off' | head -n 10 || true)

# --- Report -------------------------------------------------------------------------------------
echo
echo "### Streaming vs nginx — wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, random $RANGE_BYTES-byte ranges of $CALLS recordings ($LEN bytes each), $(nproc) CPU(s), commit $commit, $(date -u +%F)"
echo
python3 - "$tmp" "$ROUNDS" "$GOAL_RATIO" "$GOAL_P99_MS" <<'EOF'
import sys
tmp, rounds, goal_ratio, goal_p99 = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
def parse(path):
    d = {}
    for line in open(path):
        if line.startswith("RESULT ") or line.startswith("CPU "):
            for kv in line.split()[1:]:
                k, v = kv.split("=")
                d[k] = float(v)
    d["rps"] = d["requests"] / (d["duration_us"] / 1e6)
    d["mbs"] = d["bytes"] / (d["duration_us"] / 1e6) / 1e6
    d["cpu"] = d["ticks"] / d["hz"] / d["wall"] * 100
    d["wrk_cpu"] = d["wrk_s"] / d["wall"] * 100
    # Everything else on the machine (other builds, tests), % of one core.
    d["other"] = max(0.0, (d["machine_ticks"] - d["ticks"]) / d["hz"] / d["wall"] * 100 - d["wrk_cpu"])
    d["errors"] = d["non206"] + d["short"] + d["err_connect"] + d["err_read"] + d["err_write"] + d["err_timeout"]
    return d
runs = {n: [parse(f"{tmp}/run_{n}_{r}.txt") for r in range(1, rounds + 1)] for n in ("nginx", "callrec")}
med = {n: sorted(rs, key=lambda d: d["rps"])[len(rs) // 2] for n, rs in runs.items()}
print("| server | requests/s | MB/s | p50 ms | p90 ms | p99 ms | max ms | non-206 / errors | server CPU % | wrk CPU % | other CPU % |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for n in ("nginx", "callrec"):
    d = med[n]
    print(f"| {n} | {d['rps']:.0f} | {d['mbs']:.0f} | {d['p50_us']/1000:.1f} | {d['p90_us']/1000:.1f} | "
          f"{d['p99_us']/1000:.1f} | {d['max_us']/1000:.1f} | {d['errors']:.0f} | {d['cpu']:.0f} | {d['wrk_cpu']:.0f} | {d['other']:.0f} |")
ratio = med["callrec"]["rps"] / med["nginx"]["rps"]
p99 = med["callrec"]["p99_us"] / 1000
errs = sum(d["errors"] for rs in runs.values() for d in rs)
print()
print(f"callrec / nginx requests/s: **{ratio:.2f}** (goal >= {goal_ratio}); callrec p99 {p99:.1f} ms (goal < {goal_p99:g} ms); "
      f"non-206 answers or socket errors over all runs: {errs:.0f}")
met = ratio >= goal_ratio and p99 < goal_p99 and errs == 0
print(f"Goal: {'met' if met else 'NOT met'}")
print()
print("Median round by requests/s. All rounds (requests/s, p99 ms, server CPU %, wrk CPU %, CPU % of everything else on the")
print("machine, seconds with a rustc running):")
for n in ("nginx", "callrec"):
    print(f"- {n}: " + "; ".join(f"{d['rps']:.0f} req/s, p99 {d['p99_us']/1000:.1f}, CPU {d['cpu']:.0f}, wrk {d['wrk_cpu']:.0f}, "
                                 f"other {d['other']:.0f}, rustc {d['busy_s']:.0f} s" for d in runs[n]))
busy = sum(d["busy_s"] for rs in runs.values() for d in rs)
if busy:
    print(f"- NOTE: another build (rustc) ran during {busy:.0f} s of the measured runs; those figures are skewed, rerun on a quiet machine.")
else:
    print("- No rustc process ran during the measured runs (sampled every second).")
for n in ("nginx", "callrec"):
    bad = [d for d in runs[n] if d["errors"]]
    for d in bad:
        print(f"- {n}: non-206 {d['non206']:.0f} (last status {d['last_non206']:.0f}), short bodies {d['short']:.0f}, "
              f"socket errors connect/read/write/timeout {d['err_connect']:.0f}/{d['err_read']:.0f}/{d['err_write']:.0f}/{d['err_timeout']:.0f}")
EOF
echo
echo "callrec after the runs: $cr_threads threads, peak RSS $cr_rss MB, 'play' audit rows: $plays (one per call per session expected: $CALLS)."
echo "CPU % are of one core (max $(($(nproc) * 100))); wrk ($THREADS threads) runs on the same cores as the server; other = the rest of the machine."
if [[ -n $log_issues ]]; then
    echo "callrec log WARN/ERROR lines:"
    sed 's/^/    /' <<<"$log_issues"
fi
