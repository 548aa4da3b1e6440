/* Deep recursion: the dump lands while 20000 frames are on the stack; after restore the
 * stack grows further (VM_GROWSDOWN must survive). */
#include "zdtm.h"

#include <string.h>

static int steps_left;
static int ms;

static __attribute__((noinline)) uint64_t dive(int depth, uint64_t acc)
{
    volatile unsigned char frame[200];
    memset((void *)frame, depth & 0xff, sizeof(frame));
    if (depth == 0) {
        for (; steps_left > 0; steps_left--) {
            zdtm_say("at the bottom, %d steps left", steps_left);
            zdtm_sleep_ms(ms);
        }
        return acc;
    }
    uint64_t r = dive(depth - 1, acc * 31 + (uint64_t)depth);
    return r + frame[depth % 200];
}

int main(void)
{
    steps_left = zdtm_env("ZDTM_STEPS", 30);
    ms = zdtm_env("ZDTM_STEP_MS", 25);
    zdtm_say("ready");
    uint64_t a = dive(20000, 1);
    zdtm_say("first dive %llu", (unsigned long long)a);
    steps_left = 1;
    uint64_t b = dive(30000, 1); /* deeper than before: the stack VMA must grow */
    zdtm_say("second dive %llu", (unsigned long long)b);
    return zdtm_result(a != b, "dives agree");
}
