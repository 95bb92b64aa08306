/* benches/libopus_patch/wac_check.c — the patched silk_warped_autocorrelation_FLP against
 * upstream's, both compiled into this program (UPSTREAM and PATCHED name the two .c files), on
 * random inputs: every output float must be bit-identical. Prints mismatches and the time per
 * call of each at the encoder's own sizes (240 samples, order 20 at complexity 5). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define silk_warped_autocorrelation_FLP upstream_wac
#include UPSTREAM
#undef silk_warped_autocorrelation_FLP
#define silk_warped_autocorrelation_FLP patched_wac
#include PATCHED
#undef silk_warped_autocorrelation_FLP

typedef void (*wac_fn)(silk_float *, const silk_float *, const silk_float, const opus_int, const opus_int);

static double us_per_call(wac_fn fn, float *in) {
    float out[MAX_SHAPE_LPC_ORDER + 1];
    volatile float sink = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int r = 0; r < 200000; r++) {
        fn(out, in, 0.3f, 240, 20);
        sink += out[r % 21];
        in[r % 240] += 1e-7f;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return ((t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9) / 200000 * 1e6;
}

int main(void) {
    float in[600], a[MAX_SHAPE_LPC_ORDER + 1], b[MAX_SHAPE_LPC_ORDER + 1];
    long bad = 0, trials = 200000;
    srand(1);
    for (long trial = 0; trial < trials; trial++) {
        int len = 1 + rand() % 599, order = 2 * (1 + rand() % (MAX_SHAPE_LPC_ORDER / 2));
        float w = (rand() % 1000) / 1000.0f * 0.5f;
        float scale = rand() % 3 == 0 ? 1e-3f : rand() % 2 ? 1.0f : 3e4f;
        for (int i = 0; i < len; i++) in[i] = ((float)rand() / RAND_MAX - 0.5f) * scale;
        upstream_wac(a, in, w, len, order);
        patched_wac(b, in, w, len, order);
        if (memcmp(a, b, sizeof(float) * (order + 1))) bad++;
    }
    printf("random inputs: %ld, mismatches: %ld\n", trials, bad);
    for (int i = 0; i < 240; i++) in[i] = (float)rand() / RAND_MAX - 0.5f;
    printf("us per call (240 samples, order 20): upstream %.2f, patched %.2f\n",
           us_per_call(upstream_wac, in), us_per_call(patched_wac, in));
    return bad != 0;
}
