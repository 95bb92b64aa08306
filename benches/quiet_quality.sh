#!/usr/bin/env bash
# benches/quiet_quality.sh — what skipping quiet frames (encoder.quiet_frames = "dtx", issue 9)
# costs in quality, against encoding every frame (quiet_frames = "encode", callrec before issue 9).
#
# WHAT IT MEASURES
#   A two-party espeak-ng dialogue (16 kHz, agent and customer alternating, only the speaker's
#   channel carries speech) with background noise on both channels: office-like pink noise at
#   -55 dBFS on the agent's, line hiss at -64 dBFS on the customer's. Two cases: the customer at
#   about the agent's level, and a quiet customer at -45 dBFS RMS. Each is encoded by
#   `callrec encode` (16 kHz, 16 kbit/s per party, complexity COMPLEXITY) with
#   --quiet-frames encode and dtx, checked with opusinfo (no WARNING) and ffprobe (duration equal
#   to the input's within one 20 ms frame), decoded with opusdec --no-dither (libopus) and with
#   ffmpeg (its own decoder: it must decode the DTX packets too), and compared with the input per
#   party:
#     - PESQ-WB (ITU-T P.862.2 via PyPI `pesq`), mean over the 8 s windows where the party talks
#       at least 30 % of the time (reference: the party's input channel, noise included);
#     - envelope correlation (10 ms RMS envelopes, the whole file);
#     - worst onset error: each turn's start in the input vs in the decoding (first 5 ms window
#       10 dB over the party's noise), in ms;
#     - party frames stored as DTX (%), and the file size as MB per call-hour.
#
# HOW TO RUN
#   benches/quiet_quality.sh
#   PYTHON=/path/to/venv/bin/python benches/quiet_quality.sh      # a Python with numpy + pesq
#   MODES="encode low:1 low:3" benches/quiet_quality.sh                # which quiet_frames modes;
#                                           low:N = quiet frames at complexity N (default
#                                           "encode low low:2 dtx")
#
# Needs: espeak-ng, sox, opusinfo, opusdec, ffmpeg, ffprobe, python3 with numpy and pesq
# (`pip install numpy pesq`).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
CALLREC=${CALLREC:-$repo/target/release/callrec}
COMPLEXITY=${COMPLEXITY:-5}
PYTHON=${PYTHON:-python3}
KEEP=${KEEP:-0}
MODES=${MODES:-encode low low:2 dtx}

die() { echo "quiet_quality: FAIL: $*" >&2; exit 1; }
log() { echo "quiet_quality: $*" >&2; }
for tool in espeak-ng sox opusinfo opusdec ffmpeg ffprobe; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install -y espeak-ng sox opus-tools ffmpeg)"
done
"$PYTHON" -c 'import numpy, pesq' 2>/dev/null || die "$PYTHON lacks numpy/pesq (pip install numpy pesq; or set PYTHON)"
[[ -x $CALLREC ]] || die "$CALLREC not found; build it with: cargo build --release"

work=$(mktemp -d /tmp/callrec-quiet.XXXXXX)
cleanup() { if [[ $KEEP == 1 ]]; then log "kept $work"; else rm -rf "$work"; fi; }
trap cleanup EXIT

AGENT=(
    "Thank you for calling, my name is Sam. How can I help you today?"
    "I'm sorry to hear that. Could you give me the order number, please?"
    "Thank you. I can see the parcel left our warehouse last Monday."
    "It looks like the courier marked it as delayed. I will raise a claim with them now."
    "In the meantime, I can send a replacement today by express delivery, free of charge."
    "Is there anything else I can help you with today?"
)
CUSTOMER=(
    "Hi, yes, I ordered some filters nearly two weeks ago and they still haven't arrived."
    "Sure, just a moment. Okay, it's four four nine one, eight eight zero two."
    "That's exactly what I saw. It just says in transit and nothing else."
    "Honestly, it's the second time this has happened this year."
    "That would be great, I really need them before the weekend."
    "No, I think that's everything. You've been very helpful, thank you."
)

log "synthesising the dialogue with espeak-ng"
segs=()
for i in "${!AGENT[@]}"; do
    espeak-ng -v en-us -p 35 -s 165 -w "$work/a$i.raw.wav" "${AGENT[$i]}"
    espeak-ng -v en-gb+f3 -p 70 -s 150 -w "$work/c$i.raw.wav" "${CUSTOMER[$i]}"
    sox "$work/a$i.raw.wav" -r 16000 -b 16 -c 1 "$work/a$i.wav" rate -v 16000 gain -n -3
    sox "$work/c$i.raw.wav" -r 16000 -b 16 -c 1 "$work/c$i.wav" rate -v 16000 gain -n -3
    sox -D "$work/a$i.wav" "$work/ta$i.wav" remix 1 0 pad 0 "0.$((40 + (i * 37) % 50))"
    sox -D "$work/c$i.wav" "$work/tc$i.wav" remix 0 1 pad 0 "0.$((40 + (i * 53) % 50))"
    segs+=("$work/ta$i.wav" "$work/tc$i.wav")
done
sox -D "${segs[@]}" "$work/dialogue.wav" pad 1.0 1.0

# The two cases and their noise, built with numpy (deterministic).
"$PYTHON" - "$work" <<'EOF'
import sys, wave, numpy as np
work = sys.argv[1]
def read(p):
    with wave.open(p) as w:
        x = np.frombuffer(w.readframes(w.getnframes()), dtype='<i2').astype(np.float64) / 32768
        return x.reshape(-1, w.getnchannels())
def write(p, x):
    with wave.open(p, 'wb') as w:
        w.setnchannels(x.shape[1]); w.setsampwidth(2); w.setframerate(16000)
        w.writeframes((np.clip(x, -1, 32767 / 32768) * 32768).astype('<i2').tobytes())
d = read(f"{work}/dialogue.wav")
rng = np.random.default_rng(9)
n = len(d)
def level(x, dbfs):
    return x * (10 ** (dbfs / 20) / np.sqrt(np.mean(x ** 2)))
# Office: pink-ish (integrated white, leaky) noise; line: white hiss.
w = rng.standard_normal(n)
pink = np.zeros(n); acc = 0.0
for i in range(n):
    acc = 0.98 * acc + w[i]; pink[i] = acc
office = level(pink - pink.mean(), -55)
line = level(rng.standard_normal(n), -64)
talk = lambda ch: d[:, ch][np.abs(d[:, ch]) > 0]
for name, cust_dbfs in [("normal", None), ("quiet", -45.0)]:
    a = d[:, 0].copy(); c = d[:, 1].copy()
    if cust_dbfs is not None:
        c *= 10 ** (cust_dbfs / 20) / np.sqrt(np.mean(talk(1) ** 2))
    np.save(f"{work}/{name}_clean.npy", np.stack([a, c], 1))
    write(f"{work}/{name}.wav", np.stack([a + office, c + line], 1))
EOF

declare -a REPORT=()
for case_ in normal quiet; do
    for mode in $MODES; do
        # `low:N` = quiet frames at complexity N (`encoder.quiet_complexity`).
        args=(--quiet-frames "${mode%%:*}")
        [[ $mode != *:* ]] || args+=(--quiet-complexity "${mode#*:}")
        out=$work/${case_}_$mode.opus
        "$CALLREC" encode --complexity "$COMPLEXITY" "${args[@]}" "$work/$case_.wav" "$out" >/dev/null
        info=$(opusinfo "$out" 2>&1) || { echo "$info" >&2; die "opusinfo rejected $out"; }
        if grep -qi WARNING <<<"$info"; then grep -i WARNING <<<"$info" >&2; die "opusinfo warnings for $out"; fi
        dur=$(ffprobe -v error -show_entries format=duration -of default=nw=1:nk=1 "$out")
        opusdec --quiet --no-dither --rate 16000 "$out" "$work/${case_}_$mode.dec.wav" 2>/dev/null
        ffmpeg -v error -y -i "$out" -ar 16000 "$work/${case_}_$mode.ff.wav" || die "ffmpeg could not decode $out"
        REPORT+=("$("$PYTHON" - "$work" "$case_" "$mode" "$dur" "$(stat -c %s "$out")" <<'EOF'
import sys, wave, numpy as np
from pesq import pesq
work, case, mode, dur, size = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
def read(p):
    with wave.open(p) as w:
        x = np.frombuffer(w.readframes(w.getnframes()), dtype='<i2').astype(np.float64) / 32768
        return x.reshape(-1, w.getnchannels())
src = read(f"{work}/{case}.wav"); dec = read(f"{work}/{case}_{mode}.dec.wav"); ff = read(f"{work}/{case}_{mode}.ff.wav")
clean = np.load(f"{work}/{case}_clean.npy")
n = len(src)
problems = []
if abs(dur - n / 16000) >= 0.02 + 0.0075:
    problems.append(f"ffprobe {dur:.3f} s vs {n / 16000:.3f} s")
# The writer takes whole 20 ms frames: a WAV's last partial frame is not stored.
if abs(len(dec) - n) >= 320:
    problems.append(f"opusdec {len(dec)} samples vs {n}")
if abs(len(ff) - n) > 320:
    problems.append(f"ffmpeg {len(ff)} samples vs {n}")
dec = dec[:n]
# DTX share: count party packets that are a TOC alone (read the Ogg packets).
data = open(f"{work}/{case}_{mode}.opus", 'rb').read()
pk, cur, i = [], b'', 0
while i < len(data):
    nseg = data[i + 26]; segs = data[i + 27:i + 27 + nseg]; p = i + 27 + nseg
    for s in segs:
        cur += data[p:p + s]; p += s
        if s < 255: pk.append(cur); cur = b''
    i = p
dtx = [0, 0]
for p in pk[2:]:
    l, off = (p[1], 2) if p[1] < 252 else (p[1] + 4 * p[2], 3)
    dtx[0] += l == 0; dtx[1] += len(p) - off - l <= 1
# Frames encoded at complexity 0 (`low`) are not visible in the file; "DTX frames" counts only
# the skipped ones.
env = lambda x: np.sqrt(np.mean(x[:len(x) // 160 * 160].reshape(-1, 160) ** 2, 1))
win = 8 * 16000
out = []
for ch in (0, 1):
    scores = []
    for s in range(0, n - win, win):
        if np.mean(np.abs(clean[s:s + win, ch]) > 0) >= 0.3:
            scores.append(pesq(16000, src[s:s + win, ch], dec[s:s + win, ch], 'wb'))
    corr = np.corrcoef(env(src[:, ch]), env(dec[:, ch]))[0, 1]
    # Onsets: turn starts (after >= 0.3 s of digital silence in the clean party).
    talk = np.abs(clean[:, ch]) > 0
    e_src, e_dec = env(src[:, ch])[::1], env(dec[:, ch])
    e5 = lambda x: np.sqrt(np.mean(x[:len(x) // 80 * 80].reshape(-1, 80) ** 2, 1))
    f_src, f_dec = e5(src[:, ch]), e5(dec[:, ch])
    noise = np.sqrt(np.mean(src[~talk, ch] ** 2))
    thr = noise * 10 ** (10 / 20)
    worst, k, silent = 0.0, 0, 0
    for idx in range(n):
        if not talk[idx]:
            silent += 1; continue
        if silent >= 4800:
            w0 = max(idx // 80 - 20, 0)
            a = next((j for j in range(w0, len(f_src)) if f_src[j] > thr), None)
            b = next((j for j in range(w0, len(f_dec)) if f_dec[j] > thr), None)
            if a is not None:
                worst = max(worst, abs((b if b is not None else 10 ** 9) - a) * 5.0)
        silent = 0
    out.append((np.mean(scores) if scores else float('nan'), len(scores), corr, worst, 100.0 * dtx[ch] / len(pk[2:])))
mb_h = size / 1e6 / (n / 16000 / 3600)
party = ["agent", "customer"]
cells = " | ".join(f"{o[0]:.2f} ({o[1]} win) / {o[2]:.3f} / {o[3]:.0f} ms / {o[4]:.0f} %" for o in out)
print(f"| {case} | {mode} | {cells} | {mb_h:.1f} | {dur:.3f} s / {n / 16000:.3f} s | {'; '.join(problems) or 'ok'} |")
EOF
)")
        log "${REPORT[-1]}"
    done
done

echo
echo "### Quiet frames: quality per party (complexity $COMPLEXITY, 16 kHz, 16 kbit/s per party)"
echo
echo "| case | quiet_frames | agent: PESQ-WB / envelope corr. / worst onset error / DTX frames | customer: same | MB per call-hour | ffprobe / input duration | checks |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${REPORT[@]}"
