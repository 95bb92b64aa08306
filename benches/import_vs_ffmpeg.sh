#!/usr/bin/env bash
# benches/import_vs_ffmpeg.sh — legacy import throughput: `callrec import` vs `ffmpeg -c:a libopus`.
#
# WHAT IT MEASURES
#   Wall time, on 2 cores (`taskset -c $CPUS`, default 0,1), to turn one hour of legacy audio into
#   Ogg Opus:
#     (a) callrec import FILE --jobs 2 --json   into a fresh store with the default encoder settings
#         (16 kHz, 16 kbit/s per party = 32 kbit/s per file, complexity 5): decode (symphonia),
#         resample, encode two uncoupled mono streams, write, fsync, index (SQLite row, evidence
#         ledger entry, audit row).
#     (b) ffmpeg -i FILE -c:a libopus -b:a 32k out.opus   (the same bits per second of output).
#         For the mono µ-law source also -b:a 16k: callrec stores a mono mix in both channels
#         from ONE 16 kbit/s encode (the packet is used for both streams), so 16k is the same bits
#         per encoded signal, 32k the same file bitrate. Both are reported.
#   Sources (built once, cached in benches/.cache/, gitignored):
#     - 1 h of 44.1 kHz stereo MP3 (libmp3lame 128 kbit/s), agent left, customer right;
#     - 1 h of 8 kHz µ-law mono WAV (the two parties mixed).
#     Both from a two-voice espeak-ng conversation (the encode bench's, if cached; otherwise built
#     here), repeated to BENCH_SECONDS.
#   Plus one batch with both files (`callrec import A B --jobs 2`) vs the two ffmpeg commands run
#   side by side (`&`), to show parallelism across files.
#   Every output is checked (untimed): opusinfo without WARNING, ffprobe duration within
#   DURATION_TOL_S of BENCH_SECONDS. Median of REPS runs, interleaved.
#   Note: callrec fsyncs its file and the index inside its timing; ffmpeg does not fsync.
#
# HOW TO RUN (quiet machine: nothing compiling)
#   cargo build --release && benches/import_vs_ffmpeg.sh
#   BENCH_SECONDS=300 REPS=1 benches/import_vs_ffmpeg.sh        # quick smoke run
#
# ENVIRONMENT
#   CALLREC         callrec binary (default <repo>/target/release/callrec); it is run as
#                   `$CALLREC --config CFG import --jobs 2 --json FILE...`
#   BENCH_SECONDS   length of each source (default 3600)
#   REPS            repetitions, median reported (default 3)
#   CPUS            taskset CPU list (default 0,1)
#   DURATION_TOL_S  allowed |ffprobe duration - BENCH_SECONDS| (default 0.1)
#
# Needs: sox, soxi, ffmpeg (with libmp3lame and libopus), ffprobe, opusinfo, espeak-ng, taskset,
# python3.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
CALLREC=${CALLREC:-$repo/target/release/callrec}
BENCH_SECONDS=${BENCH_SECONDS:-3600}
REPS=${REPS:-3}
CPUS=${CPUS:-0,1}
DURATION_TOL_S=${DURATION_TOL_S:-0.1}
cache=$here/.cache

die() { echo "import_vs_ffmpeg: FAIL: $*" >&2; exit 1; }
log() { echo "import_vs_ffmpeg: $*" >&2; }

for tool in sox soxi ffmpeg ffprobe opusinfo espeak-ng taskset python3; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install -y sox ffmpeg opus-tools espeak-ng util-linux python3)"
done
[[ -x $CALLREC ]] || die "$CALLREC not found; build it with: cargo build --release"
"$CALLREC" import --help >/dev/null 2>&1 || die "$CALLREC has no 'import' subcommand (set CALLREC to a build that has)"
[[ $BENCH_SECONDS =~ ^[0-9]+$ && $BENCH_SECONDS -gt 0 ]] || die "BENCH_SECONDS must be a positive integer"
mkdir -p "$cache"
[[ -f $here/.gitignore ]] || printf '.cache/\n' >"$here/.gitignore"

# ---------------------------------------------------------------------------------------------
# 1. Sources (cached)
# ---------------------------------------------------------------------------------------------
conv=$cache/conversation_48k_2ch.wav   # shared with encode_vs_opusenc.sh
if [[ ! -f $conv ]]; then
    log "synthesising a two-voice conversation with espeak-ng (once)"
    work=$(mktemp -d "$cache/build.XXXXXX")
    agent=("Thank you for calling, my name is Daniel, how can I help you today?"
        "Could you give me the account number on your last invoice?"
        "I can see the order, it left our warehouse on Friday."
        "I will send a replacement today at no extra charge."
        "Is there anything else I can help you with?")
    customer=("Hi, my parcel still has not arrived after two weeks."
        "Sure, it is four four nine one, eight eight zero two."
        "The tracking has not changed since then."
        "That would be great, thank you."
        "No, that is everything, bye now.")
    segs=()
    for i in "${!agent[@]}"; do
        espeak-ng -v en-us -p 35 -s 165 -w "$work/a$i.raw.wav" "${agent[$i]}"
        espeak-ng -v en-gb+f3 -p 70 -s 150 -w "$work/c$i.raw.wav" "${customer[$i]}"
        sox "$work/a$i.raw.wav" -r 48000 -b 16 -c 1 "$work/a$i.wav" rate -v 48000 gain -n -3
        sox "$work/c$i.raw.wav" -r 48000 -b 16 -c 1 "$work/c$i.wav" rate -v 48000 gain -n -3
        sox -D "$work/a$i.wav" "$work/ta$i.wav" remix 1 0 pad 0 0.4
        sox -D "$work/c$i.wav" "$work/tc$i.wav" remix 0 1 pad 0 0.6
        segs+=("$work/ta$i.wav" "$work/tc$i.wav")
    done
    sox -D "${segs[@]}" "$work/conv.wav"
    mv "$work/conv.wav" "$conv"
    rm -rf "$work"
fi

long=$cache/import_${BENCH_SECONDS}s_48k_2ch.wav
mp3=$cache/import_${BENCH_SECONDS}s_44k1_stereo.mp3
ulaw=$cache/import_${BENCH_SECONDS}s_8k_ulaw.wav
if [[ ! -f $mp3 || ! -f $ulaw ]]; then
    conv_samples=$(soxi -s "$conv")
    want=$((BENCH_SECONDS * 48000))
    reps=$(((want + conv_samples - 1) / conv_samples))
    log "building ${BENCH_SECONDS} s sources (once)"
    sox -D "$conv" "$long.tmp.wav" repeat $((reps - 1)) trim 0 "${want}s"
    mv "$long.tmp.wav" "$long"
    ffmpeg -nostdin -v error -y -i "$long" -ar 44100 -ac 2 -c:a libmp3lame -b:a 128k "$mp3.tmp.mp3"
    mv "$mp3.tmp.mp3" "$mp3"
    # The old recorder's mono mix: both parties summed, 8 kHz µ-law.
    sox "$long" -r 8000 -c 1 -e u-law "$ulaw.tmp.wav" remix 1,2 rate -v 8000
    mv "$ulaw.tmp.wav" "$ulaw"
    rm -f "$long"
fi

# ---------------------------------------------------------------------------------------------
# 2. Timed runs
# ---------------------------------------------------------------------------------------------
out=$(mktemp -d "$cache/out.XXXXXX")
trap 'rm -rf "$out"' EXIT

timed() {
    local t0 t1
    t0=$EPOCHREALTIME
    if ! taskset -c "$CPUS" "$@" >"$out/last.log" 2>"$out/last.err"; then
        cat "$out/last.log" "$out/last.err" >&2
        die "command failed: $*"
    fi
    t1=$EPOCHREALTIME
    python3 -c "print(f'{$t1 - $t0:.3f}')"
}

check_output() {
    local f=$1 info dur
    info=$(opusinfo "$f" 2>&1) || { echo "$info" >&2; die "opusinfo rejected $f"; }
    if grep -qi 'WARNING' <<<"$info"; then
        grep -i 'WARNING' <<<"$info" >&2
        die "opusinfo printed warnings for $f"
    fi
    dur=$(ffprobe -v error -show_entries format=duration -of default=nw=1:nk=1 "$f") || die "ffprobe rejected $f"
    python3 - "$f" "$dur" "$BENCH_SECONDS" "$DURATION_TOL_S" <<'EOF' || exit 1
import sys
f, dur, want, tol = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
if abs(dur - want) > tol:
    print(f"import_vs_ffmpeg: FAIL: {f}: ffprobe duration {dur:.3f} s, expected {want} +- {tol}", file=sys.stderr)
    sys.exit(1)
EOF
}

# A fresh store per run: the import is idempotent, so a second run into the same store would
# only hash the file and skip it.
callrec_import() { # label files...
    local label=$1 store cfg t f n
    shift
    store=$out/store-$label
    rm -rf "$store"
    mkdir -p "$store"
    cfg=$out/$label.toml
    printf '[box]\nid = "bench"\n[storage]\ndir = "%s"\n' "$store/data" >"$cfg"
    t=$(timed "$CALLREC" --config "$cfg" import --jobs 2 --json "$@")
    n=$(python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(s["imported"])' "$out/last.log")
    [[ $n -eq $# ]] || { cat "$out/last.log" >&2; die "callrec imported $n of $# files"; }
    while IFS= read -r f; do check_output "$f"; done < <(find "$store/data/calls" -name '*.opus')
    echo "$t"
}

ffmpeg_opus() { # bitrate input output
    ffmpeg -nostdin -v error -y -i "$2" -c:a libopus -b:a "$1" "$3"
}
ffmpeg_both() { # output-dir
    ffmpeg_opus 32k "$mp3" "$1/both_mp3.opus" &
    local p1=$!
    ffmpeg_opus 32k "$ulaw" "$1/both_ulaw.opus" &
    local p2=$!
    wait "$p1" && wait "$p2"
}
export -f ffmpeg_opus ffmpeg_both
export mp3 ulaw

cat "$mp3" "$ulaw" >/dev/null
log "callrec: $CALLREC; ffmpeg: $(ffmpeg -version | head -1)"
log "sources: $mp3, $ulaw (${BENCH_SECONDS} s each); taskset -c $CPUS; $REPS rep(s)"

declare -A T
keys="cr_mp3 ff_mp3 cr_ulaw ff_ulaw32 ff_ulaw16 cr_both ff_both"
for k in $keys; do T[$k]=""; done
for ((rep = 1; rep <= REPS; rep++)); do
    t=$(callrec_import mp3 "$mp3"); T[cr_mp3]+=" $t"; log "rep $rep callrec mp3: $t s"
    t=$(timed ffmpeg -nostdin -v error -y -i "$mp3" -c:a libopus -b:a 32k "$out/ff_mp3.opus"); check_output "$out/ff_mp3.opus"
    T[ff_mp3]+=" $t"; log "rep $rep ffmpeg mp3 32k: $t s"
    t=$(callrec_import ulaw "$ulaw"); T[cr_ulaw]+=" $t"; log "rep $rep callrec ulaw: $t s"
    t=$(timed ffmpeg -nostdin -v error -y -i "$ulaw" -c:a libopus -b:a 32k "$out/ff_ulaw32.opus"); check_output "$out/ff_ulaw32.opus"
    T[ff_ulaw32]+=" $t"; log "rep $rep ffmpeg ulaw 32k: $t s"
    t=$(timed ffmpeg -nostdin -v error -y -i "$ulaw" -c:a libopus -b:a 16k "$out/ff_ulaw16.opus"); check_output "$out/ff_ulaw16.opus"
    T[ff_ulaw16]+=" $t"; log "rep $rep ffmpeg ulaw 16k: $t s"
    t=$(callrec_import both "$mp3" "$ulaw"); T[cr_both]+=" $t"; log "rep $rep callrec both: $t s"
    t=$(timed bash -c 'ffmpeg_both "$0"' "$out"); check_output "$out/both_mp3.opus"; check_output "$out/both_ulaw.opus"
    T[ff_both]+=" $t"; log "rep $rep ffmpeg both (parallel): $t s"
done

# ---------------------------------------------------------------------------------------------
# 3. Report
# ---------------------------------------------------------------------------------------------
median() { printf '%s\n' $1 | python3 -c '
import sys, statistics
print(f"{statistics.median(float(x) for x in sys.stdin.read().split()):.2f}")'; }
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
m() { median "${T[$1]}"; }
echo
echo "### Import throughput — ${BENCH_SECONDS} s per source, taskset -c $CPUS, median of $REPS"
echo
echo "| source | callrec import s | ffmpeg libopus s | ratio callrec/ffmpeg | audio s per wall s (callrec) |"
echo "|---|---|---|---|---|"
echo "| 44.1 kHz stereo MP3 (ffmpeg -b:a 32k) | $(m cr_mp3) | $(m ff_mp3) | $(ratio "$(m cr_mp3)" "$(m ff_mp3)") | $(python3 -c "print(round($BENCH_SECONDS / $(m cr_mp3)))") |"
echo "| 8 kHz µ-law mono WAV (ffmpeg -b:a 32k) | $(m cr_ulaw) | $(m ff_ulaw32) | $(ratio "$(m cr_ulaw)" "$(m ff_ulaw32)") | $(python3 -c "print(round($BENCH_SECONDS / $(m cr_ulaw)))") |"
echo "| 8 kHz µ-law mono WAV (ffmpeg -b:a 16k) | $(m cr_ulaw) | $(m ff_ulaw16) | $(ratio "$(m cr_ulaw)" "$(m ff_ulaw16)") | |"
echo "| both in one batch (ffmpeg: two processes side by side, 32k) | $(m cr_both) | $(m ff_both) | $(ratio "$(m cr_both)" "$(m ff_both)") | $(python3 -c "print(round(2 * $BENCH_SECONDS / $(m cr_both)))") |"
echo
echo "Raw times (s):"
for k in $keys; do echo "- $k: [${T[$k]# }]"; done
echo
echo "All outputs passed opusinfo (no WARNING) and ffprobe duration = ${BENCH_SECONDS} +- ${DURATION_TOL_S} s."
