/* Robust mutexes held across a move: a plain robust one and a robust priority-inheritance one
 * whose owner dies afterwards without unlocking them (the next locker must get EOWNERDEAD), and
 * one unlocked by its owner afterwards (glibc checks the word's owner tid against the tid it
 * cached: with a stale word the unlock fails with EPERM). Each lock word names its owner by
 * tid, which a restore with fresh tids must follow. */
#include "zdtm.h"

#include <pthread.h>
#include <string.h>

static pthread_mutex_t dies_plain, dies_pi, unlocked;
static volatile int go, held;

static void robust_init(pthread_mutex_t *m, int protocol)
{
    pthread_mutexattr_t a;

    pthread_mutexattr_init(&a);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutexattr_setprotocol(&a, protocol);
    pthread_mutex_init(m, &a);
    pthread_mutexattr_destroy(&a);
}

/* holds two robust mutexes across the move and dies holding them */
static void *dier(void *arg)
{
    (void)arg;
    int rc = pthread_mutex_lock(&dies_plain) | pthread_mutex_lock(&dies_pi);
    __atomic_add_fetch(&held, 1, __ATOMIC_SEQ_CST);
    while (!go)
        zdtm_sleep_ms(5);
    return (void *)(intptr_t)rc;
}

/* holds one across the move and unlocks it afterwards */
static void *unlocker(void *arg)
{
    (void)arg;
    int rc = pthread_mutex_lock(&unlocked);
    __atomic_add_fetch(&held, 1, __ATOMIC_SEQ_CST);
    while (!go)
        zdtm_sleep_ms(5);
    return (void *)(intptr_t)(rc ? rc : pthread_mutex_unlock(&unlocked));
}

int main(void)
{
    int steps = zdtm_env("ZDTM_STEPS", 30), ms = zdtm_env("ZDTM_STEP_MS", 20);
    pthread_t a, b;
    void *ra, *rb;

    robust_init(&dies_plain, PTHREAD_PRIO_NONE);
    robust_init(&dies_pi, PTHREAD_PRIO_INHERIT);
    robust_init(&unlocked, PTHREAD_PRIO_NONE);
    pthread_create(&a, NULL, dier, NULL);
    pthread_create(&b, NULL, unlocker, NULL);
    while (__atomic_load_n(&held, __ATOMIC_SEQ_CST) != 2)
        zdtm_sleep_ms(1);
    zdtm_say("ready");
    for (int s = 0; s < steps; s++) {
        zdtm_say("step %d", s);
        zdtm_sleep_ms(ms);
    }
    int busy = pthread_mutex_trylock(&dies_plain);
    go = 1;
    pthread_join(a, &ra);
    pthread_join(b, &rb);
    /* bounded: a lock whose owner's death went unseen would be waited for forever */
    struct timespec by;
    clock_gettime(CLOCK_REALTIME, &by);
    by.tv_sec += 20;
    int plain = pthread_mutex_timedlock(&dies_plain, &by);
    int pi = pthread_mutex_timedlock(&dies_pi, &by);
    int mine = pthread_mutex_timedlock(&unlocked, &by);
    zdtm_say("held %s, unlock by its owner %s, owner died: plain %s, pi %s, relock %s",
             strerror(busy), strerror((int)(intptr_t)rb), strerror(plain), strerror(pi),
             strerror(mine));
    return zdtm_result(busy == EBUSY && ra == NULL && rb == NULL && plain == EOWNERDEAD &&
                           pi == EOWNERDEAD && mine == 0,
                       "robust mutexes lost their owners");
}
