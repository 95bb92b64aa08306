#!/usr/bin/env bash
# benches/libopus_patch.sh — checks and measures callrec's patches to the bundled libopus
# (vendor/opusic-sys/README.callrec.md): same packets as upstream libopus 1.6.1, less CPU.
#
# WHAT IT DOES
#   Builds libopus twice with CMake and the options opusic-sys's build.rs uses (Release,
#   run-time CPU detection, no DRED/OSCE): as vendored in vendor/opusic-sys/opus (patched), and
#   with vendor/opusic-sys/callrec.patch reversed (upstream). Then:
#   1. benches/libopus_patch/wac_check.c: the patched silk_warped_autocorrelation_FLP against
#      upstream's on 200 000 random inputs (every output float bit-identical) and its time per
#      call at the encoder's sizes;
#   2. benches/libopus_patch/encode.c, linked with each build, encodes the same two-party WAV
#      the way callrec does (a mono VOIP encoder per channel, 16 kbit/s, voice, 20 ms frames) at
#      complexities 0 2 5 10: the packet files must be identical (cmp); at complexity 5 it
#      reports the CPU seconds of each build (median of RUNS) and their ratio.
#   Any mismatch fails the script (non-zero exit).
#
# HOW TO RUN
#   benches/libopus_patch.sh                      # a 120 s espeak-ng dialogue, made here
#   WAV=path/to/two-party.wav benches/libopus_patch.sh
#
# ENVIRONMENT
#   WAV    a stereo WAV (ch 0 agent, ch 1 customer); converted to 16 kHz 16-bit with sox
#   RUNS   timed runs per build at complexity 5 (default 3)
#
# Needs: cmake, cc, patch, sox, espeak-ng (without WAV).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
RUNS=${RUNS:-3}
WAV=${WAV:-}
die() { echo "libopus_patch: FAIL: $*" >&2; exit 1; }
log() { echo "libopus_patch: $*" >&2; }
for tool in cmake cc patch sox; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install -y cmake build-essential patch sox espeak-ng)"
done

work=$(mktemp -d /tmp/callrec-libopus.XXXXXX)
trap 'rm -rf "$work"' EXIT

# --- the two source trees -----------------------------------------------------------------
cp -a "$repo/vendor/opusic-sys/opus" "$work/patched"
cp -a "$repo/vendor/opusic-sys/opus" "$work/upstream"
(cd "$work" && mkdir -p rev && cp -a upstream rev/opus && cd rev &&
    patch -s -R -p1 <"$repo/vendor/opusic-sys/callrec.patch") || die "callrec.patch does not reverse cleanly"
rm -rf "$work/upstream" && mv "$work/rev/opus" "$work/upstream"

build() {
    local src=$1 out=$2
    mkdir -p "$out"
    (cd "$out" && cmake "$src" -DCMAKE_BUILD_TYPE=Release -DOPUS_DRED=OFF -DOPUS_OSCE=OFF \
        -DOPUS_HARDENING=ON -DOPUS_STACK_PROTECTOR=ON -DOPUS_FORTIFY_SOURCE=ON \
        -DOPUS_X86_PRESUME_SSE=ON -DOPUS_X86_PRESUME_SSE2=ON -DOPUS_X86_MAY_HAVE_SSE=ON \
        -DOPUS_X86_MAY_HAVE_SSE2=ON -DOPUS_X86_MAY_HAVE_SSE4_1=ON -DOPUS_X86_MAY_HAVE_AVX2=ON \
        >"$out/cmake.log" 2>&1 && make -j2 opus >"$out/make.log" 2>&1) || die "building libopus in $out (see $out/make.log)"
}
log "building upstream and patched libopus"
build "$work/upstream" "$work/b-upstream"
build "$work/patched" "$work/b-patched"

# --- 1. the warped autocorrelation on random inputs ----------------------------------------
inc=(-I "$work/patched/include" -I "$work/patched/silk" -I "$work/patched/silk/float" -I "$work/patched/celt")
cc -O3 "${inc[@]}" -DUPSTREAM="\"$work/upstream/silk/float/warped_autocorrelation_FLP.c\"" \
    -DPATCHED="\"$work/patched/silk/float/warped_autocorrelation_FLP.c\"" \
    -o "$work/wac_check" "$here/libopus_patch/wac_check.c" -lm || die "building wac_check"
wac=$("$work/wac_check") || { echo "$wac" >&2; die "the patched warped autocorrelation differs from upstream's"; }

# --- 2. whole encodes ------------------------------------------------------------------------
for b in upstream patched; do
    cc -O2 -I "$work/$b/include" -o "$work/encode-$b" "$here/libopus_patch/encode.c" "$work/b-$b/libopus.a" -lm ||
        die "building the encode harness against $b"
done
if [[ -z $WAV ]]; then
    command -v espeak-ng >/dev/null || die "espeak-ng not found (or give WAV=)"
    log "making a 120 s two-party dialogue with espeak-ng"
    espeak-ng -v en-us -p 35 -s 165 -w "$work/a.wav" "Thank you for calling, my name is Alex. How can I help you today? Let me look up your account, that will take a moment. I can see the order here, it left our warehouse on Monday."
    espeak-ng -v en-gb+f3 -p 70 -s 150 -w "$work/c.wav" "Hello, I ordered a replacement part two weeks ago and it has not arrived yet. The order number is on the email I received. Could you tell me when it will be delivered?"
    # Agent first, then the customer: each party talks while the other is silent.
    sox "$work/a.wav" "$work/a_pad.wav" pad 0 "$(soxi -D "$work/c.wav")"
    sox "$work/c.wav" "$work/c_pad.wav" pad "$(soxi -D "$work/a.wav")" 0
    sox -M "$work/a_pad.wav" "$work/c_pad.wav" "$work/turn.wav"
    sox "$work/turn.wav" -r 16000 -b 16 "$work/dialogue.wav" repeat 9 trim 0 120
else
    sox "$WAV" -r 16000 -b 16 -c 2 "$work/dialogue.wav"
fi
in_s=$(soxi -D "$work/dialogue.wav")
for c in 0 2 5 10; do
    "$work/encode-upstream" "$work/dialogue.wav" "$work/up-$c.bin" "$c" >/dev/null
    "$work/encode-patched" "$work/dialogue.wav" "$work/pa-$c.bin" "$c" >/dev/null
    cmp -s "$work/up-$c.bin" "$work/pa-$c.bin" || die "complexity $c: the patched libopus made other packets"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
up=() pa=()
for ((r = 0; r < RUNS; r++)); do
    up+=("$("$work/encode-upstream" "$work/dialogue.wav" "$work/t.bin" 5)")
    pa+=("$("$work/encode-patched" "$work/dialogue.wav" "$work/t.bin" 5)")
done
up_s=$(median "${up[@]}") pa_s=$(median "${pa[@]}")
echo "### libopus patches: $(printf '%.1f' "$in_s") s two-party input, 16 kHz, complexity 5, median of $RUNS"
echo
echo "| build | encode CPU s | ratio to upstream | packets |"
echo "|---|---|---|---|"
echo "| upstream libopus 1.6.1 | $up_s | 1.000 | — |"
echo "| patched (vendor/opusic-sys) | $pa_s | $(python3 -c "print(f'{$pa_s / $up_s:.3f}')") | identical at complexity 0, 2, 5, 10 (cmp) |"
echo
echo "- warped autocorrelation: $(paste -sd ";" <<<"$wac" | sed 's/;/; /g')"
echo "- raw CPU s: upstream ${up[*]}; patched ${pa[*]}; CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
