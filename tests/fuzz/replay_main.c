/*
 * Replays a fuzz target without libFuzzer: every file in the corpus folder
 * given as argv[1], then random inputs and byte-level mutations of each
 * corpus file, from a fixed seed (HMS_FUZZ_SEED overrides, HMS_FUZZ_ITERS sets
 * the count). ctest runs every target this way, so a decoder that crashes on
 * its corpus or on simple mutations fails the suite even without clang.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static size_t load_corpus(const char *dir, uint8_t ***bufs, size_t **lens)
{
    DIR *d = dir ? opendir(dir) : NULL;
    size_t n = 0, cap = 0;
    *bufs = NULL;
    *lens = NULL;
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        uint8_t *buf = malloc(1 << 20);
        size_t len = buf ? fread(buf, 1, 1 << 20, f) : 0;
        fclose(f);
        if (!buf)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            *bufs = realloc(*bufs, cap * sizeof(**bufs));
            *lens = realloc(*lens, cap * sizeof(**lens));
        }
        (*bufs)[n] = buf;
        (*lens)[n] = len;
        n++;
    }
    closedir(d);
    return n;
}

int main(int argc, char **argv)
{
    const char *seed_env = getenv("HMS_FUZZ_SEED");
    const char *iters_env = getenv("HMS_FUZZ_ITERS");
    rng_state = seed_env ? strtoull(seed_env, NULL, 0) : 0x484d53ULL;
    long iters = iters_env ? atol(iters_env) : 20000;
    uint8_t **bufs;
    size_t *lens;
    size_t n = load_corpus(argc > 1 ? argv[1] : NULL, &bufs, &lens);
    uint8_t *scratch = malloc(1 << 20);
    if (!scratch)
        return 1;

    for (size_t i = 0; i < n; i++)
        LLVMFuzzerTestOneInput(bufs[i], lens[i]);
    for (long it = 0; it < iters; it++) {
        size_t len;
        if (n > 0 && (it & 3) != 0) {
            size_t k = rng_next() % n;
            len = lens[k];
            memcpy(scratch, bufs[k], len);
            int flips = 1 + (int)(rng_next() % 4);
            for (int f = 0; f < flips && len > 0; f++) {
                size_t pos = rng_next() % len;
                switch (rng_next() % 4) {
                case 0: scratch[pos] ^= (uint8_t)(1u << (rng_next() % 8)); break;
                case 1: scratch[pos] = (uint8_t)rng_next(); break;
                case 2: len = pos; break; /* truncate */
                default: scratch[pos] = (uint8_t)(0x7f + (rng_next() % 3)); break;
                }
            }
        } else {
            len = rng_next() % 512;
            for (size_t j = 0; j < len; j++)
                scratch[j] = (uint8_t)rng_next();
        }
        LLVMFuzzerTestOneInput(scratch, len);
    }
    printf("%zu corpus inputs, %ld generated inputs: 0 crashes\n", n, iters);
    for (size_t i = 0; i < n; i++)
        free(bufs[i]);
    free(bufs);
    free(lens);
    free(scratch);
    return 0;
}
