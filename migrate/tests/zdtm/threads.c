/* zdtm: a pthread program (ZDTM_THREADS workers, default 8) in mutex, condvar, barrier and
 * rwlock loops with per-thread TLS, signal masks and names; besides them a thread waiting in
 * futex_wait (a condvar) the whole run, one in nanosleep steps and one inside a signal
 * handler on its alternate stack. After the steps: pthread_kill to every worker (a handled
 * signal for even ones, a pending blocked one for odd ones) and from worker 0 to the main
 * thread (whose tid is the pid), then every thread is joined. Meanwhile a churner creates
 * and joins short-lived threads one after another, so threads are born and end during the
 * freeze.
 * Everything printed depends on the computation only. */
#define _GNU_SOURCE
#include "zdtm.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_WORKERS 256
#define TABLE 16

static int nworkers, steps, step_ms;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ping_cv = PTHREAD_COND_INITIALIZER, late_cv = PTHREAD_COND_INITIALIZER;
static pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;
static pthread_barrier_t step_bar, end_bar;
static uint64_t sum, table[TABLE];
static int ping_turn, late_flag;
static volatile sig_atomic_t handler_release, handler_inside, sleeper_done;
static int handler_on_altstack;
static int worker_bad[MAX_WORKERS];
static pthread_t workers[MAX_WORKERS], main_thread;

/* until flag is set, for at most 20 s: 0, or 1 when it never was */
static int wait_flag(volatile sig_atomic_t *flag)
{
    for (int ms = 0; ms < 20000; ms++) {
        if (*flag)
            return 0;
        zdtm_sleep_ms(1);
    }
    return 1;
}

static __thread uint64_t tls_acc = 0x9e3779b97f4a7c15ull; /* per thread from here on */
static __thread int tls_index = -1;
static __thread volatile sig_atomic_t tls_got_usr2;
static __thread pid_t tls_tid;

static void on_usr2(int sig)
{
    (void)sig;
    /* the signal must reach the thread it was sent to, under the tid it had from birth */
    if (tls_index >= 0 && tls_tid == (pid_t)syscall(SYS_gettid))
        tls_got_usr2 = 1;
}

/* SIGTRAP handled: a restore that ends its batches of calls at an int3 must give it back */
static volatile sig_atomic_t traps;
static void on_trap(int sig)
{
    (void)sig;
    traps++;
}

static void on_usr1(int sig)
{
    stack_t ss;

    (void)sig;
    handler_inside = 1;
    sigaltstack(NULL, &ss);
    handler_on_altstack = (ss.ss_flags & SS_ONSTACK) != 0;
    while (!handler_release)
        zdtm_sleep_ms(2);
}

static void ping_pong(int me, int step)
{
    if (me > 1 || nworkers < 2)
        return;
    pthread_mutex_lock(&mu);
    while (ping_turn % 2 != me)
        pthread_cond_wait(&ping_cv, &mu);
    ping_turn++;
    sum += (uint64_t)(step * 7 + me);
    pthread_cond_broadcast(&ping_cv);
    pthread_mutex_unlock(&mu);
}

static int check_self(int me)
{
    char path[96], comm[32] = "", want[16];
    sigset_t mask;
    FILE *f;

    snprintf(want, sizeof(want), "w%d", me);
    snprintf(path, sizeof(path), "/proc/self/task/%d/comm", (int)syscall(SYS_gettid));
    if ((f = fopen(path, "r"))) {
        if (!fgets(comm, sizeof(comm), f))
            comm[0] = '\0';
        fclose(f);
    }
    comm[strcspn(comm, "\n")] = '\0';
    pthread_sigmask(SIG_SETMASK, NULL, &mask);
    if (strcmp(comm, want) != 0)
        return 1;
    if (sigismember(&mask, SIGUSR2) != (me % 2) || !sigismember(&mask, SIGRTMIN + me % 8))
        return 2;
    return 0;
}

static void *worker(void *arg)
{
    int me = (int)(intptr_t)arg;
    char name[16];
    sigset_t mask;

    tls_index = me;
    tls_tid = (pid_t)syscall(SYS_gettid);
    tls_acc ^= (uint64_t)me * 0x100000001b3ull;
    snprintf(name, sizeof(name), "w%d", me);
    pthread_setname_np(pthread_self(), name);
    sigemptyset(&mask);
    if (me % 2)
        sigaddset(&mask, SIGUSR2);
    sigaddset(&mask, SIGRTMIN + me % 8);
    sigaddset(&mask, SIGUSR1);
    pthread_sigmask(SIG_SETMASK, &mask, NULL);
    for (int s = 0; s < steps; s++) {
        uint64_t x = zdtm_rand(&tls_acc);
        pthread_mutex_lock(&mu);
        sum += x & 0xffff;
        pthread_mutex_unlock(&mu);
        if (me % 4 == 0) {
            pthread_rwlock_wrlock(&rw);
            table[s % TABLE] ^= x;
            pthread_rwlock_unlock(&rw);
        } else {
            pthread_rwlock_rdlock(&rw);
            volatile uint64_t seen = table[(s + me) % TABLE];
            (void)seen;
            pthread_rwlock_unlock(&rw);
        }
        ping_pong(me, s);
        if (me == 2 % nworkers) /* the steps take their time: a dump lands mid-run */
            zdtm_sleep_ms(step_ms);
        pthread_barrier_wait(&step_bar);
    }
    pthread_barrier_wait(&end_bar);
    /* main sends SIGUSR2 now: handled here, or pending here while blocked */
    if (me % 2 == 0) {
        if (wait_flag(&tls_got_usr2))
            return (void *)(uintptr_t)(worker_bad[me] = 3, 0);
        /* and the main thread, whose tid is the pid */
        if (me == 0 && pthread_kill(main_thread, SIGUSR2) != 0)
            return (void *)(uintptr_t)(worker_bad[me] = 4, 0);
    } else {
        sigset_t pend, one;
        int sig = 0;
        do {
            sigpending(&pend);
            zdtm_sleep_ms(1);
        } while (!sigismember(&pend, SIGUSR2));
        sigemptyset(&one);
        sigaddset(&one, SIGUSR2);
        sigwait(&one, &sig);
    }
    worker_bad[me] = check_self(me);
    return (void *)(uintptr_t)(tls_acc & 0xffffffff);
}

static void *late_waiter(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    while (!late_flag)
        pthread_cond_wait(&late_cv, &mu); /* futex_wait for the whole run */
    pthread_mutex_unlock(&mu);
    return (void *)1;
}

/* Threads born and ending all the time: the freeze must catch one born while its siblings
 * are being stopped, and one that ends meanwhile must not fail it. */
#define CHURN 400
static void *churn_one(void *arg)
{
    uint64_t x = (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;
    zdtm_sleep_ms(1);
    return (void *)(uintptr_t)(zdtm_rand(&x) & 0xffff);
}

static void *churner(void *arg)
{
    uint64_t total = 0;

    (void)arg;
    for (uintptr_t i = 0; i < CHURN; i++) {
        pthread_t t;
        void *ret;
        if (pthread_create(&t, NULL, churn_one, (void *)i) != 0)
            return NULL;
        pthread_join(t, &ret);
        total += (uint64_t)(uintptr_t)ret;
    }
    return (void *)(uintptr_t)total;
}

static void *sleeper(void *arg)
{
    (void)arg;
    while (!sleeper_done)
        zdtm_sleep_ms(50);
    return (void *)2;
}

static void *in_handler(void *arg)
{
    static char alt[64 * 1024];
    stack_t ss = {.ss_sp = alt, .ss_size = sizeof(alt)};
    sigset_t mask;

    (void)arg;
    sigaltstack(&ss, NULL);
    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR1);
    pthread_sigmask(SIG_UNBLOCK, &mask, NULL);
    while (!handler_inside)
        zdtm_sleep_ms(1);
    return (void *)3;
}

int main(void)
{
    pthread_t late, sleepy, handler, churn;
    struct sigaction sa = {0};
    sigset_t mask;
    uint64_t joined = 0;
    int bad = 0;

    main_thread = pthread_self();
    tls_index = MAX_WORKERS; /* the handler's check: a thread of ours, under its own tid */
    tls_tid = (pid_t)syscall(SYS_gettid);
    nworkers = zdtm_env("ZDTM_THREADS", 8);
    steps = zdtm_env("ZDTM_STEPS", 40);
    step_ms = zdtm_env("ZDTM_STEP_MS", 10);
    if (nworkers < 1 || nworkers > MAX_WORKERS)
        return zdtm_result(0, "ZDTM_THREADS out of range");
    sa.sa_handler = on_usr2;
    sigaction(SIGUSR2, &sa, NULL);
    sa.sa_handler = on_trap;
    sigaction(SIGTRAP, &sa, NULL);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_ONSTACK;
    sigaction(SIGUSR1, &sa, NULL);
    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR1); /* only the handler thread takes it */
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    pthread_barrier_init(&step_bar, NULL, (unsigned)nworkers);
    pthread_barrier_init(&end_bar, NULL, (unsigned)nworkers + 1);
    pthread_create(&late, NULL, late_waiter, NULL);
    pthread_create(&sleepy, NULL, sleeper, NULL);
    pthread_create(&handler, NULL, in_handler, NULL);
    pthread_create(&churn, NULL, churner, NULL);
    pthread_kill(handler, SIGUSR1);
    for (int i = 0; i < nworkers; i++)
        pthread_create(&workers[i], NULL, worker, (void *)(intptr_t)i);
    while (!handler_inside)
        zdtm_sleep_ms(1);
    zdtm_say("ready");
    pthread_barrier_wait(&end_bar);
    for (int i = 0; i < nworkers; i++)
        if (pthread_kill(workers[i], SIGUSR2) != 0)
            bad |= 1;
    if (wait_flag(&tls_got_usr2))
        bad |= 64;
    for (int i = 0; i < nworkers; i++) {
        void *ret;
        pthread_join(workers[i], &ret);
        joined += (uint64_t)(uintptr_t)ret;
        if (worker_bad[i])
            bad |= 2 << worker_bad[i];
    }
    pthread_mutex_lock(&mu);
    late_flag = 1;
    pthread_cond_broadcast(&late_cv);
    pthread_mutex_unlock(&mu);
    sleeper_done = 1;
    handler_release = 1;
    void *r1, *r2, *r3, *churned;
    pthread_join(churn, &churned);
    pthread_join(late, &r1);
    pthread_join(sleepy, &r2);
    pthread_join(handler, &r3);
    if ((intptr_t)r1 + (intptr_t)r2 + (intptr_t)r3 != 6 || !handler_on_altstack)
        bad |= 32;
    uint64_t tsum = 0;
    for (int i = 0; i < TABLE; i++)
        tsum = tsum * 31 + table[i];
    zdtm_say("threads %d steps %d sum %llu table %llx joined %llx ping %d churn %llu", nworkers,
             steps, (unsigned long long)sum, (unsigned long long)tsum,
             (unsigned long long)joined, ping_turn, (unsigned long long)(uintptr_t)churned);
    if (!churned)
        bad |= 128;
    raise(SIGTRAP);
    if (traps != 1)
        bad |= 256;
    char why[64];
    snprintf(why, sizeof(why), "checks failed (%#x)", bad);
    return zdtm_result(bad == 0, why);
}
