/* TLS variables (fs_base): initialized and zero-initialized __thread data. */
#include "zdtm.h"

static __thread uint64_t tls_counter = 1000;
static __thread char tls_name[64] = "thread-local";
static __thread uint64_t tls_zero[512];

int main(void)
{
    int steps = zdtm_env("ZDTM_STEPS", 30), ms = zdtm_env("ZDTM_STEP_MS", 25);
    uint64_t *addr = &tls_counter;

    zdtm_say("ready");
    for (int s = 0; s < steps; s++) {
        tls_counter = tls_counter * 3 + 1;
        tls_zero[s % 512] += tls_counter;
        tls_name[s % 10] = (char)('a' + s % 26);
        zdtm_say("step %d counter %llu name %s", s, (unsigned long long)tls_counter, tls_name);
        zdtm_sleep_ms(ms);
    }
    return zdtm_result(addr == &tls_counter && tls_zero[1] != 0, "TLS moved");
}
