#!/usr/bin/env bash
# benches/search_1m.sh — call search at 1 million calls, through the real, authenticated HTTP API.
#
# WHAT IT MEASURES
#   Sequential latency of `GET /api/calls?...` (one request at a time, curl's %{time_total}, one
#   curl process per filter reusing its connection) against `callrec serve` (plain HTTP on
#   loopback) whose index holds N (default 1 000 000) generated calls, logged in as a `qa` user
#   (sees every call). REQUESTS (default 200) requests per filter, each with different values:
#     a  agent + last 7 days   agent=aK&from=END-7d&to=END   (K random of 500 agents)
#     b  number prefix         number=%2B49XY[Z]              (2 or 3 random digits after +49)
#     c  duration > 10 min     min_duration_s=M               (M random in 600..900)
#     d  no filter             (first page of everything; the same request every time)
#     e  agent + campaign      agent=aK&campaign=campNN       (20 campaigns)
#   and, only when named in FILTERS (not part of the goal table by default):
#     f  status                status=complete                (every call matches)
#     g  duration > 30 min     min_duration_s=M               (M random in 1800..3600: rare)
#     h  floor + last 7 days   box=floor-KK&from=END-7d&to=END (with BOXES > 1: the hub's filter)
#     i  floor + agent         box=floor-KK&agent=aK
#   With BOXES > 1 the index is a hub's: calls spread round-robin over boxes floor-01..floor-NN
#   (the same search code and schema serve a box and the hub; the hub adds only the box filter).
#   Each request is what the UI sends: first page, 50 calls, newest first. The server's cost per
#   request includes the session lookup, the capped count (LIMIT 10001), the page query, tags and
#   intervals of the 50 rows, JSON, and the `search` audit row (a write + fsync).
#   Per filter it reports HTTP p50/p95/max and the same queries run directly with the sqlite3 CLI
#   (`.timer on`: count query + page query per request, literal values, 1 ms resolution), so SQL
#   time and HTTP/server overhead can be told apart, plus EXPLAIN QUERY PLAN of both statements.
#   Caveat: the CLI is Debian's SQLite (3.40, no STAT4) while the server links its own (bundled,
#   newer) and binds parameters, so a plan can differ (e.g. filter f); the HTTP figure is the truth.
#   Goal (RESULTS.md): HTTP p95 < 25 ms for every filter.
#
#   Before timing, WARM (default 20) other requests per filter are sent and their JSON is checked:
#   status 200, every call matches the filter, newest first, 50 calls per page (or `total` when
#   fewer). Any non-200 answer, in the check or the timed run, fails the script.
#
# THE DATA
#   Generated once with the sqlite3 CLI and cached as benches/.cache/search_<N>_v<GEN>.db
#   (gitignored; delete it to regenerate, ~25 s for 1 M rows plus ~500 MB of disk): the schema comes
#   from callrec's own migrations (`callrec users add` opens the index read-write), then N calls in
#   one transaction (indexes dropped and re-created with their original SQL around the insert),
#   then ANALYZE. Calls are spread evenly over the 90 days before generation time (ids in time
#   order, 0-30 s jitter): 500 agents a1..a500, 128 seats, 20 campaigns camp01..camp20,
#   inbound/outbound, numbers +49 followed by 9-11 digits (first digit 1-9), duration 20 s plus
#   an exponential with mean 194 s (about 5 % over 10 min, mean 214 s), status complete. The
#   user `bench` (role qa) is created in the cached DB. Each run works on a copy in TMPROOT.
#
#   callrec itself never runs ANALYZE or `PRAGMA optimize` (as of this script): a real box's index
#   has no sqlite_stat1. ANALYZE=0 removes the statistics from the copy to measure that case.
#
# HOW TO RUN (on a quiet machine: nothing compiling; both cores are used by curl + server)
#   benches/search_1m.sh                       # 1 M calls, 200 requests per filter
#   ANALYZE=0 benches/search_1m.sh             # the same without planner statistics
#   N=100000 REQUESTS=50 benches/search_1m.sh  # quick smoke test
#
# ENVIRONMENT
#   CALLREC    callrec binary (default: <repo>/target/release/callrec; built with
#              `cargo build --release -j2 --locked` if missing). It is copied for the run.
#   N          calls in the index (default 1000000)
#   BOXES      boxes (floors) the calls come from (default 1: box "bench"; e.g. 10 for the hub)
#   REQUESTS   timed requests per filter (default 200)
#   WARM       untimed, checked requests per filter before timing (default 20)
#   SEED       seed of bash's RANDOM for the request values (default 42)
#   FILTERS    which filters to run (default "a b c d e"; f and g are extra)
#   ANALYZE    1 (default) keep the statistics of the cached DB; 0 drop sqlite_stat1 in the copy
#   EXTRA_SQL  SQL run on the copy before the server starts, to try an index without a migration,
#              e.g. EXTRA_SQL='DROP INDEX calls_number; CREATE INDEX calls_number ON calls (remote_number, started_at_utc); ANALYZE calls;'
#   PORT       loopback port for callrec serve (default: a free one)
#   TMPROOT    where the temporary store is made (default /tmp); removed afterwards
#   KEEP=1     keep it (config, server log, responses, SQL scripts; path printed)
#
# Needs: sqlite3 (with math functions, as Debian's), curl, python3 (checked below).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
CALLREC=${CALLREC:-$repo/target/release/callrec}
N=${N:-1000000}
BOXES=${BOXES:-1}
REQUESTS=${REQUESTS:-200}
WARM=${WARM:-20}
SEED=${SEED:-42}
ANALYZE=${ANALYZE:-1}
EXTRA_SQL=${EXTRA_SQL:-}
read -r -a FILTERS <<<"${FILTERS:-a b c d e}"
PORT=${PORT:-}
TMPROOT=${TMPROOT:-/tmp}
KEEP=${KEEP:-0}
GEN=1 # bump when the generator below changes, so the cache is rebuilt
PASSWORD="bench password 1234"
GOAL_MS=25

die() { echo "search_1m: FAIL: $*" >&2; exit 1; }
log() { echo "search_1m: $*" >&2; }

for tool in sqlite3 curl python3; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install -y sqlite3 curl python3)"
done
for v in N REQUESTS WARM SEED BOXES; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer"
done
[[ $N -ge 1000 && $REQUESTS -ge 1 ]] || die "need N >= 1000 and REQUESTS >= 1"
[[ $ANALYZE == 0 || $ANALYZE == 1 ]] || die "ANALYZE must be 0 or 1"
[[ $(sqlite3 :memory: "SELECT ln(1)") == 0.0 ]] || die "this sqlite3 has no math functions (ln); Debian's has"

if [[ ! -x $CALLREC ]]; then
    log "building callrec (cargo build --release -j2 --locked)"
    (cd "$repo" && cargo build --release -j2 --locked) >&2 || die "cargo build failed"
fi
[[ -x $CALLREC ]] || die "$CALLREC not found"

tmp=$(mktemp -d "$TMPROOT/callrec-search1m.XXXXXX")
pid=""
cleanup() {
    [[ -z ${watch_pid:-} ]] || kill "$watch_pid" 2>/dev/null || true
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
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

# The binary may be rebuilt by someone else during the run; use a private copy.
cp "$CALLREC" "$tmp/callrec"
BIN=$tmp/callrec
commit=$(cd "$repo" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -z $(cd "$repo" && git status --porcelain --untracked-files=no 2>/dev/null) ]] || commit="$commit-dirty"

write_config() { # dir port
    printf '[box]\nid = "bench"\n\n[storage]\ndir = "%s"\n\n[server]\nbind = "127.0.0.1:%s"\ntls = false\n' "$1/store" "$2" >"$1/callrec.toml"
}

# --- The cached 1 M-call index ------------------------------------------------------------------
mkdir -p "$here/.cache"
cache=$here/.cache/search_${N}_v${GEN}.db
[[ $BOXES -le 1 ]] || cache=$here/.cache/search_${N}_boxes${BOXES}_v${GEN}.db
if [[ ! -f $cache ]]; then
    log "generating $N calls into $cache (once)"
    gen=$tmp/gen
    mkdir -p "$gen"
    write_config "$gen" 1
    echo "$PASSWORD" | "$BIN" --config "$gen/callrec.toml" users add bench --role qa --password-stdin >/dev/null ||
        die "callrec users add (creating the schema) failed"
    db=$gen/store/callrec.db
    sqlite3 "$db" 'PRAGMA wal_checkpoint(TRUNCATE)' >/dev/null
    drop_sql=$(sqlite3 "$db" "SELECT 'DROP INDEX ' || name || ';' FROM sqlite_master WHERE type = 'index' AND tbl_name = 'calls' AND sql IS NOT NULL")
    create_sql=$(sqlite3 "$db" "SELECT sql || ';' FROM sqlite_master WHERE type = 'index' AND tbl_name = 'calls' AND sql IS NOT NULL")
    END=$(date -u +%s)
    t0=$EPOCHREALTIME
    sqlite3 "$db" >/dev/null <<EOF || die "generating the calls failed"
.bail on
PRAGMA journal_mode = OFF;
PRAGMA synchronous = OFF;
PRAGMA cache_size = -262144;
BEGIN;
$drop_sql
WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < $N),
g AS (
  SELECT i,
         $END - 90 * 86400 + (i - 1) * (90.0 * 86400 / $N) + (abs(random()) % 30000) / 1000.0 AS t,
         20000 + CAST(-ln((abs(random()) % 1000000 + 1) / 1000001.0) * 193600 AS INTEGER) AS dur,
         1 + abs(random()) % 500 AS agent_n,
         1 + abs(random()) % 20 AS camp_n,
         1 + abs(random()) % 128 AS seat_n,
         abs(random()) % 2 AS outb,
         '+49' || (1 + abs(random()) % 9)
               || substr(printf('%010d', abs(random()) % 10000000000), 1, 8 + abs(random()) % 3) AS num
  FROM seq
)
INSERT INTO calls (id, box_id, seat_id, mode, status, started_at_utc, started_mono_ms, ended_at_utc,
                   duration_ms, bytes, sha256, dropped_frames, rate_hz, bitrate_bps, agent, direction,
                   remote_number, campaign, external_id, rel_path, end_reason)
SELECT i, CASE WHEN $BOXES > 1 THEN printf('floor-%02d', 1 + i % $BOXES) ELSE 'bench' END, printf('seat%03d', seat_n), 'control', 'complete',
       strftime('%Y-%m-%dT%H:%M:%fZ', t, 'unixepoch'), CAST(t * 1000 AS INTEGER) % 1000000000,
       strftime('%Y-%m-%dT%H:%M:%fZ', t + dur / 1000.0, 'unixepoch'),
       dur, 200 + dur * 4, lower(hex(randomblob(32))), 0, 16000, 16000,
       'a' || agent_n, CASE outb WHEN 1 THEN 'outbound' ELSE 'inbound' END,
       num, printf('camp%02d', camp_n), 'ext-' || i, 'calls/bench/' || i || '.opus', 'stop'
FROM g;
$create_sql
COMMIT;
ANALYZE;
PRAGMA journal_mode = WAL;
EOF
    log "generated in $(python3 -c "print(f'{$EPOCHREALTIME - $t0:.1f}')") s"
    [[ $(sqlite3 "$db" 'PRAGMA integrity_check') == ok ]] || die "integrity_check of the generated DB failed"
    mv "$db" "$cache.part" && mv "$cache.part" "$cache"
    rm -rf "$gen"
fi

# --- A store for this run: a copy of the cache ---------------------------------------------------
store=$tmp/store
mkdir -p "$store"
cp "$cache" "$store/callrec.db"
DB=$store/callrec.db
if [[ $ANALYZE == 0 ]]; then
    sqlite3 "$DB" "DROP TABLE IF EXISTS sqlite_stat1; DROP TABLE IF EXISTS sqlite_stat4;"
fi
if [[ -n $EXTRA_SQL ]]; then
    log "running EXTRA_SQL on the copy: $EXTRA_SQL"
    sqlite3 "$DB" "$EXTRA_SQL" >/dev/null || die "EXTRA_SQL failed"
fi
stats=$(sqlite3 "$DB" "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")
read -r rows end_utc long_pct < <(sqlite3 -separator ' ' "$DB" \
    "SELECT count(*), max(started_at_utc), round(100.0 * sum(duration_ms > 600000) / count(*), 1) FROM calls")
db_mb=$(( $(stat -c %s "$DB") / 1048576 ))
log "index: $rows calls, newest $end_utc, $long_pct % over 10 min, $db_mb MB, sqlite_stat1 present: $stats"
# Write the copy out now: otherwise the kernel flushes ~500 MB of dirty pages ~30 s later, in the
# middle of the timed requests, and the server's fsyncs (audit rows) stall behind it.
sync "$DB"
cat "$DB" >/dev/null # into the page cache, as on a box that has been serving for a while

if [[ -z $PORT ]]; then
    PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi
write_config "$tmp" "$PORT"
CFG=$tmp/callrec.toml
BASE=http://127.0.0.1:$PORT

"$BIN" --config "$CFG" serve >"$tmp/serve.log" 2>&1 &
pid=$!
# A cache made by an older callrec is migrated by the server as it starts (minutes at 10 M calls
# when a migration rebuilds a table or adds an index on calls): wait for it, and say how long.
t_start=$EPOCHREALTIME
for _ in $(seq 1 12000); do
    curl -fsS -o /dev/null "$BASE/healthz" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { cat "$tmp/serve.log" >&2; die "callrec serve exited during start-up"; }
    sleep 0.1
done
curl -fsS -o /dev/null "$BASE/healthz" || { cat "$tmp/serve.log" >&2; die "no /healthz within 20 min"; }
log "server up (and index migrated) in $(python3 -c "print(f'{$EPOCHREALTIME - $t_start:.1f}')") s"

# --- Log in as `bench` (GET /login for the CSRF cookie + field, POST /login -> 303 + session) -----
JAR=$tmp/cookies.txt
login_page=$(curl -fsS -c "$JAR" "$BASE/login") || die "GET /login failed"
csrf=$(sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p' <<<"$login_page" | head -n 1)
[[ -n $csrf ]] || die "no csrf field in the login page"
code=$(curl -sS -o /dev/null -w '%{http_code}' -b "$JAR" -c "$JAR" \
    --data-urlencode username=bench --data-urlencode "password=$PASSWORD" \
    --data-urlencode "csrf=$csrf" --data-urlencode next=/calls "$BASE/login")
[[ $code == 303 ]] || die "POST /login answered $code, expected 303"
grep -q callrec_session "$JAR" || die "no session cookie after login"

# --- Request values (the same list drives HTTP and SQL) ------------------------------------------
RANDOM=$SEED
end_day=${end_utc:0:10}
from_day=$(date -u -d "$end_day - 7 days" +%F)
until_bound="$(date -u -d "$end_day + 1 day" +%F)T00:00:00.000Z" # a bare `to` date includes that day
declare -A NAME=(
    [a]="agent + last 7 days" [b]="number prefix" [c]="duration > 10 min"
    [d]="no filter" [e]="agent + campaign" [f]="status" [g]="duration > 30 min"
    [h]="floor + last 7 days" [i]="floor + agent")
for f in "${FILTERS[@]}"; do [[ -n ${NAME[$f]:-} ]] || die "unknown filter '$f' in FILTERS (a..i)"; done
box_name() { # -> a random box of the index
    if ((BOXES > 1)); then printf 'floor-%02d' $((1 + RANDOM % BOXES)); else printf bench; fi
}
# One line per request: query string US SQL WHERE clause US JSON checks for the validator, US being
# the ASCII unit separator (not whitespace, so an empty field survives `read`).
US=$'\x1f'
make_requests() { # filter count out
    local f=$1 n=$2 out=$3 i k p m c
    : >"$out"
    for ((i = 0; i < n; i++)); do
        case $f in
        a)
            k=$((1 + RANDOM % 500))
            printf 'agent=a%d&from=%s&to=%s\037WHERE agent = '\''a%d'\'' AND started_at_utc >= '\''%sT00:00:00.000Z'\'' AND started_at_utc < '\''%s'\''\037{"agent":"a%d","since":"%sT00:00:00.000Z","until":"%s"}\n' \
                "$k" "$from_day" "$end_day" "$k" "$from_day" "$until_bound" "$k" "$from_day" "$until_bound" >>"$out"
            ;;
        b)
            p="$((1 + RANDOM % 9))$((RANDOM % 10))"
            if ((RANDOM % 3 == 0)); then p="$p$((RANDOM % 10))"; fi
            printf 'number=%%2B49%s\037WHERE remote_number >= '\''+49%s'\'' AND remote_number < '\''+49%s'\'' || char(1114111)\037{"prefix":"+49%s"}\n' \
                "$p" "$p" "$p" "$p" >>"$out"
            ;;
        c)
            m=$((600 + RANDOM % 301))
            printf 'min_duration_s=%d\037WHERE duration_ms >= %d\037{"min_ms":%d}\n' "$m" $((m * 1000)) $((m * 1000)) >>"$out"
            ;;
        d)
            printf '\037\037{}\n' >>"$out"
            ;;
        f)
            printf 'status=complete\037WHERE status = '\''complete'\''\037{"status":"complete"}\n' >>"$out"
            ;;
        g)
            m=$((1800 + RANDOM % 1801))
            printf 'min_duration_s=%d\037WHERE duration_ms >= %d\037{"min_ms":%d}\n' "$m" $((m * 1000)) $((m * 1000)) >>"$out"
            ;;
        h)
            c=$(box_name)
            printf 'box=%s&from=%s&to=%s\037WHERE box_id = '\''%s'\'' AND started_at_utc >= '\''%sT00:00:00.000Z'\'' AND started_at_utc < '\''%s'\''\037{"box":"%s","since":"%sT00:00:00.000Z","until":"%s"}\n' \
                "$c" "$from_day" "$end_day" "$c" "$from_day" "$until_bound" "$c" "$from_day" "$until_bound" >>"$out"
            ;;
        i)
            k=$((1 + RANDOM % 500))
            c=$(box_name)
            printf 'box=%s&agent=a%d\037WHERE box_id = '\''%s'\'' AND agent = '\''a%d'\''\037{"box":"%s","agent":"a%d"}\n' \
                "$c" "$k" "$c" "$k" "$c" "$k" >>"$out"
            ;;
        e)
            k=$((1 + RANDOM % 500))
            c=$(printf 'camp%02d' $((1 + RANDOM % 20)))
            printf 'agent=a%d&campaign=%s\037WHERE agent = '\''a%d'\'' AND campaign = '\''%s'\''\037{"agent":"a%d","campaign":"%s"}\n' \
                "$k" "$c" "$k" "$c" "$k" "$c" >>"$out"
            ;;
        esac
    done
}
for f in "${FILTERS[@]}"; do
    make_requests "$f" "$WARM" "$tmp/warm_$f.lst"
    make_requests "$f" "$REQUESTS" "$tmp/req_$f.lst"
done

# --- Warm-up and correctness check (untimed) ----------------------------------------------------
for f in "${FILTERS[@]}"; do
    mkdir -p "$tmp/resp_$f"
    i=0
    while IFS=$US read -r qs _ _; do
        code=$(curl -sS -g -b "$JAR" -o "$tmp/resp_$f/$i.json" -w '%{http_code}' "$BASE/api/calls?$qs")
        [[ $code == 200 ]] || { cat "$tmp/resp_$f/$i.json" >&2; die "filter $f: GET /api/calls?$qs answered $code"; }
        i=$((i + 1))
    done <"$tmp/warm_$f.lst"
done
python3 - "$tmp" "${FILTERS[@]}" <<'EOF' || die "a response did not match its filter (see above)"
import json, sys
tmp, filters = sys.argv[1], sys.argv[2:]
bad = 0
for f in filters:
    for i, line in enumerate(open(f"{tmp}/warm_{f}.lst")):
        qs, _, want = line.rstrip("\n").split("\x1f")
        want = json.loads(want)
        r = json.load(open(f"{tmp}/resp_{f}/{i}.json"))
        calls = r["calls"]
        def fail(msg):
            global bad
            bad += 1
            print(f"filter {f} ?{qs}: {msg}", file=sys.stderr)
        if len(calls) != min(50, r["total"]):
            fail(f"{len(calls)} calls on the first page, total {r['total']}")
        keys = [(c["started_at_utc"], c["id"]) for c in calls]
        if keys != sorted(keys, reverse=True):
            fail("not newest first")
        for c in calls:
            if "agent" in want and c["agent"] != want["agent"]: fail(f"call {c['id']}: agent {c['agent']}")
            if "box" in want and c["box_id"] != want["box"]: fail(f"call {c['id']}: box {c['box_id']}")
            if "campaign" in want and c["campaign"] != want["campaign"]: fail(f"call {c['id']}: campaign {c['campaign']}")
            if "since" in want and not want["since"] <= c["started_at_utc"] < want["until"]: fail(f"call {c['id']}: started {c['started_at_utc']}")
            if "prefix" in want and not c["remote_number"].startswith(want["prefix"]): fail(f"call {c['id']}: number {c['remote_number']}")
            if "min_ms" in want and c["duration_ms"] < want["min_ms"]: fail(f"call {c['id']}: duration {c['duration_ms']}")
            if "status" in want and c["status"] != want["status"]: fail(f"call {c['id']}: status {c['status']}")
sys.exit(1 if bad else 0)
EOF

watch_start "$tmp/busy_http.txt"

# --- Timed HTTP run: sequential, one request at a time --------------------------------------------
for f in "${FILTERS[@]}"; do
    cfgf=$tmp/curl_$f.cfg
    : >"$cfgf"
    while IFS=$US read -r qs _ _; do
        printf 'url = "%s/api/calls?%s"\noutput = "/dev/null"\n' "$BASE" "$qs" >>"$cfgf"
    done <"$tmp/req_$f.lst"
    curl -sS -g -b "$JAR" -K "$cfgf" -w '%{http_code} %{time_total}\n' >"$tmp/http_$f.txt" ||
        die "filter $f: curl failed"
    non200=$(awk '$1 != 200' "$tmp/http_$f.txt" | wc -l)
    [[ $non200 -eq 0 ]] || die "filter $f: $non200 of $REQUESTS answers were not 200: $(awk '$1 != 200 { print $1 }' "$tmp/http_$f.txt" | sort | uniq -c | tr '\n' ' ')"
    log "filter $f (${NAME[$f]}): $REQUESTS requests done"
done

watch_stop "$tmp/busy_http.txt"
kill -TERM "$pid"
wait "$pid" || true
pid=""
log_issues=$(sed 's/\x1b\[[0-9;]*m//g' "$tmp/serve.log" | grep -E 'ERROR|panic' | head -n 10 || true)

# --- The same queries in the sqlite3 CLI --------------------------------------------------------
COLS="id, box_id, seat_id, mode, status, started_at_utc, started_mono_ms, ended_at_utc, duration_ms, bytes, sha256, dropped_frames, rate_hz, bitrate_bps, agent, direction, remote_number, campaign, external_id, rel_path, end_reason, note"
for f in "${FILTERS[@]}"; do
    {
        echo ".timer on"
        echo ".output /dev/null"
        while IFS=$US read -r _ wh _; do
            echo "SELECT count(*) FROM (SELECT 1 FROM calls $wh LIMIT 10001);"
            echo "SELECT $COLS FROM calls $wh ORDER BY started_at_utc DESC, id DESC LIMIT 50 OFFSET 0;"
        done <"$tmp/req_$f.lst"
    } >"$tmp/sql_$f.sql"
    sqlite3 "$DB" <"$tmp/sql_$f.sql" | awk '/^Run Time:/ { print $4 }' >"$tmp/sqltimes_$f.txt"
    [[ $(wc -l <"$tmp/sqltimes_$f.txt") -eq $((2 * REQUESTS)) ]] || die "filter $f: sqlite3 did not time every statement"
    wh=$(head -n 1 "$tmp/req_$f.lst" | cut -d "$US" -f2)
    {
        echo "-- count: SELECT count(*) FROM (SELECT 1 FROM calls $wh LIMIT 10001)"
        sqlite3 "$DB" "EXPLAIN QUERY PLAN SELECT count(*) FROM (SELECT 1 FROM calls $wh LIMIT 10001)"
        echo "-- page:  SELECT ... FROM calls $wh ORDER BY started_at_utc DESC, id DESC LIMIT 50"
        sqlite3 "$DB" "EXPLAIN QUERY PLAN SELECT $COLS FROM calls $wh ORDER BY started_at_utc DESC, id DESC LIMIT 50 OFFSET 0"
    } >"$tmp/plan_$f.txt"
done

# --- Report -------------------------------------------------------------------------------------
sqlite_v=$(sqlite3 --version | cut -d' ' -f1)
echo
echo "### Search at $rows calls — $REQUESTS sequential requests per filter, $(nproc) CPU(s), commit $commit, $(date -u +%F)"
echo
echo "Index: $db_mb MB, newest call $end_utc, $long_pct % of calls over 10 min, planner statistics (ANALYZE): $([[ $stats == 1 ]] && echo yes || echo NO)."
[[ -z $EXTRA_SQL ]] || echo "EXTRA_SQL run on the index before the server started: \`$EXTRA_SQL\`"
echo
python3 - "$tmp" "$GOAL_MS" "$REQUESTS" "${FILTERS[@]}" <<'EOF'
import json, math, statistics, sys
tmp, goal, n, filters = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
names = {"a": "agent + last 7 days", "b": "number prefix", "c": "duration > 10 min",
         "d": "no filter", "e": "agent + campaign", "f": "status", "g": "duration > 30 min",
         "h": "floor + last 7 days", "i": "floor + agent"}
def pct(xs, p):
    xs = sorted(xs)
    return xs[max(0, math.ceil(p / 100 * len(xs)) - 1)]
print("| filter | HTTP p50 ms | HTTP p95 ms | HTTP max ms | SQL p50 ms | SQL p95 ms | SQL mean ms | matches (median) | p95 < %g ms |" % goal)
print("|---|---|---|---|---|---|---|---|---|")
misses = []
for f in filters:
    http = [float(l.split()[1]) * 1000 for l in open(f"{tmp}/http_{f}.txt")]
    st = [float(x) * 1000 for x in open(f"{tmp}/sqltimes_{f}.txt")]
    sql = [st[i] + st[i + 1] for i in range(0, len(st), 2)]
    totals = []
    for i in range(1000):
        try:
            r = json.load(open(f"{tmp}/resp_{f}/{i}.json"))
        except FileNotFoundError:
            break
        totals.append((r["total"], r["total_capped"]))
    med = sorted(totals)[len(totals) // 2] if totals else (0, False)
    ok = pct(http, 95) < goal
    if not ok:
        misses.append(f)
    print(f"| {f}: {names[f]} | {pct(http, 50):.1f} | {pct(http, 95):.1f} | {max(http):.1f} | "
          f"{pct(sql, 50):.0f} | {pct(sql, 95):.0f} | {statistics.mean(sql):.1f} | "
          f"{med[0]}{'+' if med[1] else ''} | {'yes' if ok else 'NO'} |")
print()
print("Goal (p95 < %g ms on every filter): %s" % (goal, "met" if not misses else "NOT met (" + ", ".join(misses) + ")"))
EOF
echo
echo "SQL = count query + page query in the sqlite3 CLI $sqlite_v (.timer real, 1 ms resolution; the server"
echo "links its own SQLite through rusqlite and binds parameters). HTTP = curl %{time_total}, keep-alive."
echo "Matches = \`total\` of the checked warm-up responses (+ = capped at 10000)."
echo
echo "Query plans (sqlite3 CLI, first request of each filter):"
for f in "${FILTERS[@]}"; do
    echo
    echo "$f: ${NAME[$f]}"
    sed 's/^/    /' "$tmp/plan_$f.txt"
done
echo
if [[ $busy_s -gt 0 ]]; then
    echo "NOTE: another build (rustc) ran during $busy_s s of the timed HTTP requests; rerun on a quiet machine."
else
    echo "No rustc process ran during the timed HTTP requests (sampled every second)."
fi
if [[ -n $log_issues ]]; then
    echo "Server log ERROR lines:"
    sed 's/^/    /' <<<"$log_issues"
fi
