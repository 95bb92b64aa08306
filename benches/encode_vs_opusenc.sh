#!/usr/bin/env bash
# benches/encode_vs_opusenc.sh — encode efficiency: `callrec encode` vs the reference `opusenc`.
#
# WHAT IT MEASURES
#   Single-core wall time to encode one hour of two-party call audio (48 kHz, 16-bit, 2 channels:
#   ch 0 = agent, ch 1 = customer, only the current speaker non-silent in its own channel) with
#     (a) callrec encode IN.wav OUT.opus --rate-hz 48000 --bitrate-bps 16000 --complexity C
#         (one Ogg Opus file, two uncoupled mono streams at 16 kbit/s each — DESIGN.md)
#     (b) opusenc --bitrate 16 --comp C --framesize 20 --quiet, run once per channel on a mono WAV
#         (channels split with sox beforehand, not timed); the two wall times are summed
#     (c) the same callrec command as (a) at the default --rate-hz 16000
#   for C = 5 (callrec default) and C = 10 (opusenc default). Every process runs under
#   `taskset -c CPU` (default CPU 0). Each measurement is repeated REPS times (default 3), runs of
#   the different configs interleaved, and the median is reported. Goal (RESULTS.md):
#   callrec at 48 kHz <= 1.05x opusenc wall time.
#   Note: `callrec encode` fsyncs its output before exiting and that is inside its timing; opusenc
#   does not fsync. At ~7 MB per output file the difference is small but not zero.
#
#   Note: callrec links the libopus bundled by the opusic-sys crate (1.6.x at the time of writing)
#   while Debian's opusenc uses the system libopus (1.3.1 on bookworm), so the ratio also measures
#   the library versions, not only callrec's own pipeline (WAV read, aligner, Ogg writer).
#
#   Every output is checked (untimed): `opusinfo` must succeed with no WARNING line, and the
#   `ffprobe` duration must be within DURATION_TOL_S (default 0.1 s) of the input length. Any
#   failure aborts the script with a non-zero exit status.
#
# INPUT AUDIO
#   Built once and cached in benches/.cache/ (gitignored): espeak-ng sentences in two voices
#   (agent: en-us, lower pitch; customer: en-gb+f3, higher pitch), resampled to 48 kHz with sox,
#   assembled into alternating turns with short pauses, then repeated and trimmed to exactly
#   BENCH_SECONDS (default 3600) seconds. Delete benches/.cache/ to rebuild. The full hour needs
#   ~1.4 GB of disk (stereo WAV + two mono splits).
#
# HOW TO RUN (on a quiet machine: nothing else compiling or recording)
#   benches/encode_vs_opusenc.sh                     # full run: 1 h of audio, C=5 and C=10, 3 reps
#   BENCH_SECONDS=120 REPS=1 benches/encode_vs_opusenc.sh   # quick smoke test
#
# ENVIRONMENT
#   CALLREC         callrec binary (default: <repo>/target/release/callrec)
#   BENCH_SECONDS   length of the test audio in seconds (default 3600)
#   REPS            repetitions per measurement, median reported (default 3)
#   COMPLEXITIES    space-separated complexities (default "5 10")
#   CPU             core to pin to (default 0)
#   DURATION_TOL_S  allowed |ffprobe duration - BENCH_SECONDS| (default 0.1)
#   OPUSENC_EXTRA   extra opusenc options (default none), e.g. "--speech" to match callrec, which
#                   sets OPUS_SIGNAL_VOICE and OPUS_APPLICATION_VOIP where opusenc uses
#                   APPLICATION_AUDIO with automatic signal detection
#
# Needs: espeak-ng, sox, soxi, opusenc, opusinfo, ffprobe, taskset, python3 (all checked below).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
CALLREC=${CALLREC:-$repo/target/release/callrec}
BENCH_SECONDS=${BENCH_SECONDS:-3600}
REPS=${REPS:-3}
COMPLEXITIES=${COMPLEXITIES:-"5 10"}
CPU=${CPU:-0}
DURATION_TOL_S=${DURATION_TOL_S:-0.1}
read -r -a OPUSENC_EXTRA <<<"${OPUSENC_EXTRA:-}"
cache=$here/.cache

die() { echo "encode_vs_opusenc: FAIL: $*" >&2; exit 1; }
log() { echo "encode_vs_opusenc: $*" >&2; }

for tool in espeak-ng sox soxi opusenc opusinfo ffprobe taskset python3; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install -y espeak-ng sox opus-tools ffmpeg util-linux python3)"
done
[[ $BENCH_SECONDS =~ ^[0-9]+$ && $BENCH_SECONDS -gt 0 ]] || die "BENCH_SECONDS must be a positive integer"
[[ $REPS =~ ^[0-9]+$ && $REPS -gt 0 ]] || die "REPS must be a positive integer"

# The binary is rebuilt by others from time to time; wait for it rather than fail at once.
wait_for_binary() {
    local i
    for i in $(seq 1 60); do
        [[ -x $CALLREC ]] && return 0
        log "waiting for $CALLREC to appear ($i/60)"
        sleep 5
    done
    die "$CALLREC not found; build it with: cargo build --release"
}
wait_for_binary

mkdir -p "$cache"
[[ -f $here/.gitignore ]] || printf '.cache/\n' >"$here/.gitignore"

# ---------------------------------------------------------------------------------------------
# 1. Test audio (cached)
# ---------------------------------------------------------------------------------------------
AGENT_LINES=(
    "Thank you for calling Northwind customer support, my name is Daniel, how can I help you today?"
    "I'm sorry to hear that. Could you give me the account number printed on your last invoice?"
    "Thank you. For security, can you please confirm the first line of your billing address?"
    "Perfect, I can see the account now. Let me pull up the recent orders."
    "I can see an order from the fourteenth of March for two replacement filters."
    "It looks like the parcel was handed to the courier but the tracking stopped updating on Friday."
    "I completely understand your frustration, and I apologise for the inconvenience."
    "What I can do is open an investigation with the courier and send a replacement at the same time."
    "The replacement would go out today by express delivery, at no extra charge."
    "Would you like it sent to the same address, or somewhere else?"
    "No problem at all. I have updated the delivery address on this order only."
    "You will receive a confirmation email within the next ten minutes with the new tracking number."
    "Is the phone number ending in four seven two still the best number to reach you?"
    "Great. I have also added a note so that anyone you speak to next can see the full history."
    "While I have you, I notice your subscription renews next month. Would you like me to go through the options?"
    "The annual plan works out about fifteen percent cheaper than paying every month."
    "Of course, there's no pressure, you can decide any time before the renewal date."
    "Is there anything else I can help you with today?"
    "Thank you for your patience, and have a lovely rest of your day."
    "Just to recap, a replacement is on its way and the courier claim reference is N W seven seven one."
)
CUSTOMER_LINES=(
    "Hi, yes, I ordered some filters nearly two weeks ago and they still haven't arrived."
    "Sure, just a moment, I need to find the email. Okay, it's four four nine one, eight eight zero two."
    "It's twenty two Meadow Lane."
    "Right, thank you."
    "Yes, that's the one. They were supposed to be here last Tuesday."
    "That's exactly what I saw. It just says in transit and nothing else."
    "Honestly, it's the second time this has happened this year, which is really annoying."
    "That would be great, I really need them before the weekend."
    "Oh, that's good, thank you."
    "Actually, could you send it to my work address instead? It's Unit five, Harbour Business Park."
    "Brilliant. Will I get a new tracking number?"
    "Okay, I'll keep an eye out for it."
    "Yes, that's still my mobile."
    "Thanks, that's helpful, I hate having to explain everything again."
    "Hmm, maybe. What's the difference in price?"
    "I'll have a think about it and call back, if that's alright."
    "Yes, that's fine. Can I ask, what happens if the original parcel turns up after all?"
    "Okay, so I just send it back with the label. Got it."
    "No, I think that's everything. You've been very helpful."
    "Thank you, you too. Bye now."
)

speech=$cache/speech_${BENCH_SECONDS}s_48k_2ch.wav
agent_mono=$cache/speech_${BENCH_SECONDS}s_48k_agent.wav
customer_mono=$cache/speech_${BENCH_SECONDS}s_48k_customer.wav
want_samples=$((BENCH_SECONDS * 48000))

build_conversation() {
    local conv=$cache/conversation_48k_2ch.wav
    if [[ ! -f $conv ]]; then
        log "synthesising the conversation with espeak-ng (once)"
        local work
        work=$(mktemp -d "$cache/build.XXXXXX")
        local i n=${#AGENT_LINES[@]} segs=() pause
        for ((i = 0; i < n; i++)); do
            # Agent: US male voice, lower pitch; customer: GB female variant, higher pitch.
            espeak-ng -v en-us -p 35 -s 165 -w "$work/a$i.raw.wav" "${AGENT_LINES[$i]}"
            espeak-ng -v en-gb+f3 -p 70 -s 150 -w "$work/c$i.raw.wav" "${CUSTOMER_LINES[$i]}"
            # Resample to 48 kHz / 16 bit (very high quality), peaks normalised to -3 dBFS
            # (no clipping; speech then sits around -20 dBFS RMS); sox's default TPDF dither.
            sox "$work/a$i.raw.wav" -r 48000 -b 16 -c 1 "$work/a$i.wav" rate -v 48000 gain -n -3
            sox "$work/c$i.raw.wav" -r 48000 -b 16 -c 1 "$work/c$i.wav" rate -v 48000 gain -n -3
            # Stereo turn, only the speaker's channel carries audio, followed by a pause of
            # 0.25-0.95 s (deterministic, varies per turn). -D: no dither on pure copies.
            pause=$(printf '0.%02d' $((25 + (i * 37) % 71)))
            sox -D "$work/a$i.wav" "$work/ta$i.wav" remix 1 0 pad 0 "$pause"
            pause=$(printf '0.%02d' $((25 + (i * 53 + 19) % 71)))
            sox -D "$work/c$i.wav" "$work/tc$i.wav" remix 0 1 pad 0 "$pause"
            segs+=("$work/ta$i.wav" "$work/tc$i.wav")
        done
        sox -D "${segs[@]}" "$work/conv.wav"
        mv "$work/conv.wav" "$conv"
        rm -rf "$work"
    fi
    echo "$conv"
}

if [[ ! -f $speech || $(soxi -s "$speech") -ne $want_samples ]]; then
    conv=$(build_conversation)
    conv_samples=$(soxi -s "$conv")
    reps=$(((want_samples + conv_samples - 1) / conv_samples))
    log "building $speech: ${conv_samples} samples per conversation x $reps, trimmed to ${BENCH_SECONDS} s"
    tmp=$speech.tmp.wav
    sox -D "$conv" "$tmp" repeat $((reps - 1)) trim 0 "${want_samples}s"
    mv "$tmp" "$speech"
    rm -f "$agent_mono" "$customer_mono"
fi
got=$(soxi -s "$speech")
[[ $got -eq $want_samples ]] || die "$speech has $got samples, expected $want_samples"
[[ $(soxi -r "$speech") -eq 48000 && $(soxi -c "$speech") -eq 2 && $(soxi -b "$speech") -eq 16 ]] ||
    die "$speech is not 48 kHz / 2 ch / 16 bit"
if [[ ! -f $agent_mono || ! -f $customer_mono ]]; then
    log "splitting channels for opusenc (untimed)"
    sox -D "$speech" "$agent_mono.tmp.wav" remix 1 && mv "$agent_mono.tmp.wav" "$agent_mono"
    sox -D "$speech" "$customer_mono.tmp.wav" remix 2 && mv "$customer_mono.tmp.wav" "$customer_mono"
fi

# ---------------------------------------------------------------------------------------------
# 2. Timed runs
# ---------------------------------------------------------------------------------------------
out=$(mktemp -d "$cache/out.XXXXXX")
trap 'rm -rf "$out"' EXIT

# Seconds (float) a command takes, pinned to $CPU; its stdout/stderr go to $out/last.log.
timed() {
    local t0 t1
    t0=$EPOCHREALTIME
    if ! taskset -c "$CPU" "$@" >"$out/last.log" 2>&1; then
        cat "$out/last.log" >&2
        die "command failed: $*"
    fi
    t1=$EPOCHREALTIME
    python3 -c "print(f'{$t1 - $t0:.3f}')"
}

# opusinfo must accept the file with no WARNING, and ffprobe must report the input's length.
check_output() {
    local f=$1 info dur
    if ! info=$(opusinfo "$f" 2>&1); then
        echo "$info" >&2
        die "opusinfo rejected $f"
    fi
    if grep -qi 'WARNING' <<<"$info"; then
        grep -i 'WARNING' <<<"$info" >&2
        die "opusinfo printed warnings for $f"
    fi
    dur=$(ffprobe -v error -show_entries format=duration -of default=nw=1:nk=1 "$f") ||
        die "ffprobe rejected $f"
    python3 - "$f" "$dur" "$BENCH_SECONDS" "$DURATION_TOL_S" <<'EOF' || exit 1
import sys
f, dur, want, tol = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
if abs(dur - want) > tol:
    print(f"encode_vs_opusenc: FAIL: {f}: ffprobe duration {dur:.3f} s, expected {want:.3f} +- {tol} s", file=sys.stderr)
    sys.exit(1)
EOF
}

median() { printf '%s\n' "$@" | sort -g | python3 -c '
import sys, statistics
print(f"{statistics.median(float(x) for x in sys.stdin.read().split()):.3f}")'; }

# Pull the file through the page cache so the first timed run does not pay for the disk.
cat "$speech" "$agent_mono" "$customer_mono" >/dev/null

log "callrec: $CALLREC ($("$CALLREC" --version 2>/dev/null || echo unknown version))"
log "opusenc: $(opusenc --version 2>&1 | head -1)${OPUSENC_EXTRA[*]:+ (extra options: ${OPUSENC_EXTRA[*]})}"
log "input: $speech (${BENCH_SECONDS} s), pinned to CPU $CPU, $REPS rep(s)"

declare -A T_CR48 T_CR16 T_OE SIZE_CR48 SIZE_CR16 SIZE_OE
for C in $COMPLEXITIES; do T_CR48[$C]=""; T_CR16[$C]=""; T_OE[$C]=""; done
for ((rep = 1; rep <= REPS; rep++)); do
    for C in $COMPLEXITIES; do
        # (a) callrec, 48 kHz
        f=$out/callrec48_c$C.opus
        t=$(timed "$CALLREC" --config /nonexistent encode --rate-hz 48000 --bitrate-bps 16000 --complexity "$C" "$speech" "$f")
        check_output "$f"
        T_CR48[$C]+=" $t"; SIZE_CR48[$C]=$(stat -c %s "$f")
        log "rep $rep C=$C callrec 48 kHz: $t s ($(cat "$out/last.log"))"

        # (b) opusenc, one mono file per channel; the two wall times are summed
        fa=$out/opusenc_c${C}_agent.opus fc=$out/opusenc_c${C}_customer.opus
        ta=$(timed opusenc --bitrate 16 --comp "$C" --framesize 20 --quiet "${OPUSENC_EXTRA[@]}" "$agent_mono" "$fa")
        tc=$(timed opusenc --bitrate 16 --comp "$C" --framesize 20 --quiet "${OPUSENC_EXTRA[@]}" "$customer_mono" "$fc")
        check_output "$fa"
        check_output "$fc"
        t=$(python3 -c "print(f'{$ta + $tc:.3f}')")
        T_OE[$C]+=" $t"; SIZE_OE[$C]=$(($(stat -c %s "$fa") + $(stat -c %s "$fc")))
        log "rep $rep C=$C opusenc x2: $t s ($ta + $tc)"

        # (c) callrec, default 16 kHz encoder rate
        f=$out/callrec16_c$C.opus
        t=$(timed "$CALLREC" --config /nonexistent encode --rate-hz 16000 --bitrate-bps 16000 --complexity "$C" "$speech" "$f")
        check_output "$f"
        T_CR16[$C]+=" $t"; SIZE_CR16[$C]=$(stat -c %s "$f")
        log "rep $rep C=$C callrec 16 kHz: $t s ($(cat "$out/last.log"))"
    done
done

# ---------------------------------------------------------------------------------------------
# 3. Report
# ---------------------------------------------------------------------------------------------
ratio() { python3 -c "print(f'{$1 / $2:.3f}')"; }
mb() { python3 -c "print(f'{$1 / 1e6:.2f}')"; }
echo
echo "### Encode efficiency — ${BENCH_SECONDS} s of 48 kHz 2-ch speech, 16 kbit/s per party, taskset -c $CPU, median of $REPS"
echo
echo "| config | callrec s | opusenc s | ratio callrec/opusenc | callrec MB | opusenc MB (2 files) |"
echo "|---|---|---|---|---|---|"
for C in $COMPLEXITIES; do
    # shellcheck disable=SC2086
    oe=$(median ${T_OE[$C]})
    # shellcheck disable=SC2086
    cr48=$(median ${T_CR48[$C]})
    # shellcheck disable=SC2086
    cr16=$(median ${T_CR16[$C]})
    echo "| C=$C, callrec 48 kHz | $cr48 | $oe | $(ratio "$cr48" "$oe") | $(mb "${SIZE_CR48[$C]}") | $(mb "${SIZE_OE[$C]}") |"
    echo "| C=$C, callrec 16 kHz (default rate) | $cr16 | $oe | $(ratio "$cr16" "$oe") | $(mb "${SIZE_CR16[$C]}") | $(mb "${SIZE_OE[$C]}") |"
done
echo
echo "Raw times (s):"
for C in $COMPLEXITIES; do
    echo "- C=$C: callrec 48 kHz [${T_CR48[$C]# }], opusenc [${T_OE[$C]# }], callrec 16 kHz [${T_CR16[$C]# }]"
done
echo
echo "All outputs passed opusinfo (no WARNING) and ffprobe duration = ${BENCH_SECONDS} +- ${DURATION_TOL_S} s."
