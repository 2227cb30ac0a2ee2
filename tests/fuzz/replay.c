/* replay.c — a libFuzzer target over its corpus and mutations (see replay.h). */
#include "replay.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>

#define REPLAY_MAX_SEEDS 64
#define REPLAY_MAX_LEN 4096 /* make fuzz's -max_len */

static uint64_t replay_state;

static uint64_t replay_rand(void)
{
    replay_state ^= replay_state << 13, replay_state ^= replay_state >> 7, replay_state ^= replay_state << 17;
    return replay_state;
}

/* One edit of buf (length *n, room REPLAY_MAX_LEN). */
static void replay_mutate(uint8_t *buf, size_t *n)
{
    static const uint8_t special[] = {'"', '\\', '{', '}', '[', ']', ',', ':', '\n', '\r', '=', '-', '.', 'e', '0', '9', ' ', 0, 0x80, 0xff};
    size_t at = *n ? replay_rand() % *n : 0, left = *n - at, len;
    switch (replay_rand() % 4) {
    case 0:
        if (*n) buf[at] ^= (uint8_t)(1u << replay_rand() % 8);
        break;
    case 1:
        if (*n) buf[at] = special[replay_rand() % sizeof special];
        break;
    case 2: /* cut a stretch */
        len = left ? replay_rand() % left % 16 + 1 : 0;
        memmove(buf + at, buf + at + len, left - len);
        *n -= len;
        break;
    default: /* repeat a stretch */
        len = left ? replay_rand() % left % 32 + 1 : 0;
        if (*n + len > REPLAY_MAX_LEN) break;
        memmove(buf + at + len, buf + at, left);
        *n += len;
    }
}

int fuzz_replay(const char *dir, int per_seed)
{
    static uint8_t seeds[REPLAY_MAX_SEEDS][REPLAY_MAX_LEN], buf[REPLAY_MAX_LEN];
    size_t len[REPLAY_MAX_SEEDS];
    int n = 0;
    DIR *d = opendir(dir);
    if (!d) return -1;
    for (struct dirent *de; (de = readdir(d)) && n < REPLAY_MAX_SEEDS;) {
        char path[1024];
        if (de->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        len[n] = fread(seeds[n], 1, REPLAY_MAX_LEN, f);
        fclose(f);
        LLVMFuzzerTestOneInput(seeds[n], len[n]);
        n++;
    }
    closedir(d);
    replay_state = 0x9e3779b97f4a7c15ULL;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < per_seed; k++) {
            size_t m = len[i];
            memcpy(buf, seeds[i], m);
            for (int e = (int)(replay_rand() % 4); e >= 0; e--) replay_mutate(buf, &m);
            LLVMFuzzerTestOneInput(buf, m);
        }
    return n;
}
