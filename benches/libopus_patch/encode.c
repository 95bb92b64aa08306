/* benches/libopus_patch/encode.c — encodes a 16-bit stereo WAV the way callrec does (one mono
 * VOIP encoder per channel, 16 kbit/s, voice signal, 20 ms frames, the given complexity) and
 * writes every packet (4-byte length + bytes) to OUT, so two libopus builds can be compared with
 * cmp. Prints the process CPU time spent encoding. Bench harness: exits on bad input. */
#include <opus.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static unsigned u32(const unsigned char *p) { return p[0] | p[1] << 8 | p[2] << 16 | (unsigned)p[3] << 24; }

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: encode IN.wav OUT complexity\n"); return 2; }
    FILE *f = fopen(argv[1], "rb");
    if (!f) { perror(argv[1]); return 1; }
    fseek(f, 0, SEEK_END); long n = ftell(f); fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(n);
    if (!buf || fread(buf, 1, n, f) != (size_t)n) { fprintf(stderr, "cannot read %s\n", argv[1]); return 1; }
    fclose(f);
    long off = 12, data = -1; unsigned rate = 0, data_bytes = 0;
    while (off + 8 <= n) {
        unsigned len = u32(buf + off + 4);
        if (!memcmp(buf + off, "fmt ", 4)) {
            if (buf[off + 10] != 2 || buf[off + 22] != 16) { fprintf(stderr, "need 16-bit stereo\n"); return 1; }
            rate = u32(buf + off + 12);
        } else if (!memcmp(buf + off, "data", 4)) { data = off + 8; data_bytes = len; break; }
        off += 8 + len + (len & 1);
    }
    if (data < 0 || !rate || data + (long)data_bytes > n) { fprintf(stderr, "not a WAV file\n"); return 1; }
    const short *pcm = (const short *)(buf + data);
    long frames = data_bytes / 4, frame = rate / 50;
    int c = atoi(argv[3]), err;
    OpusEncoder *e[2];
    for (int k = 0; k < 2; k++) {
        e[k] = opus_encoder_create(rate, 1, OPUS_APPLICATION_VOIP, &err);
        if (err != OPUS_OK) { fprintf(stderr, "opus_encoder_create: %d\n", err); return 1; }
        opus_encoder_ctl(e[k], OPUS_SET_BITRATE(16000));
        opus_encoder_ctl(e[k], OPUS_SET_COMPLEXITY(c));
        opus_encoder_ctl(e[k], OPUS_SET_SIGNAL(OPUS_SIGNAL_VOICE));
    }
    FILE *o = fopen(argv[2], "wb");
    if (!o) { perror(argv[2]); return 1; }
    float *fr = malloc(sizeof(float) * frame);
    unsigned char pk[1500];
    struct timespec t0, t1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    for (long s = 0; s + frame <= frames; s += frame)
        for (int k = 0; k < 2; k++) {
            for (long i = 0; i < frame; i++) fr[i] = pcm[(s + i) * 2 + k] / 32768.0f;
            int len = opus_encode_float(e[k], fr, frame, pk, sizeof pk);
            if (len < 0) { fprintf(stderr, "opus_encode_float: %d\n", len); return 1; }
            fwrite(&len, 4, 1, o);
            fwrite(pk, 1, len, o);
        }
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
    fclose(o);
    printf("%.3f\n", (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
    return 0;
}
