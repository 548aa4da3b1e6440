/* A multi-threaded job for the lab: mosthreads STEPS GATE_DIR [stdin].
 *
 * Eight workers take turns (mutex + condvar) writing one line each per step, then meet at a
 * barrier; so the output is the same in every run, however the threads are scheduled. Worker 0
 * pthread_kills another worker every step (the handler counts, per thread). The main thread
 * waits for GATE_DIR/half, then joins a helper thread made at the start and makes another one
 * (which raises a signal and checks its tid); worker 0 waits for GATE_DIR/end before the last
 * step. With "stdin", one more thread reads stdin to its end and reports what it read. A test
 * creates the gates once the job has moved: joins, creations, signals and reads then happen
 * away from home, and a native run (gates made beforehand) prints the same.
 *
 * Output: the workers' lines, then per thread its signal count and whether gettid stayed the
 * same, then the helpers' and the reader's reports, and whether a worker's affinity and
 * attributes could be read by its pthread_t (after the late helper: away). Exit status 0. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define WORKERS 8

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t turn_cv = PTHREAD_COND_INITIALIZER;
static pthread_barrier_t step_barrier;
static pthread_t workers[WORKERS];
static int turn, steps;
static const char *gates;
static __thread volatile sig_atomic_t usr1_seen;
static volatile sig_atomic_t usr1_count[WORKERS + 2];
static __thread int my_slot;
static unsigned long long kill_failures;

static void on_usr1(int sig)
{
    (void)sig;
    usr1_seen++;
    usr1_count[my_slot]++;
}

static pid_t tid_now(void)
{
    return (pid_t)syscall(SYS_gettid);
}

static void say(const char *text)
{
    size_t len = strlen(text);
    while (len > 0) {
        ssize_t n = write(1, text, len);
        if (n <= 0)
            exit(3);
        text += n;
        len -= (size_t)n;
    }
}

static void gate_wait(const char *name)
{
    char path[4096];
    struct timespec tick = {0, 10 * 1000 * 1000};

    snprintf(path, sizeof(path), "%s/%s", gates, name);
    while (access(path, F_OK) != 0)
        nanosleep(&tick, NULL);
}

static unsigned long long work(unsigned long long acc, int id, int step)
{
    for (int i = 0; i < 20000; i++)
        acc = acc * 6364136223846793005ull + (unsigned long long)(id * 131 + step + i);
    return acc;
}

static void *worker(void *arg)
{
    int id = (int)(long)arg;
    unsigned long long acc = (unsigned long long)id;
    pid_t tid = tid_now();
    char line[128];

    my_slot = id;
    pthread_barrier_wait(&step_barrier); /* no signal before every handler knows its slot */
    for (int s = 0; s < steps; s++) {
        acc = work(acc, id, s);
        if (id == 0 && s == steps - 1)
            gate_wait("end");
        if (id == 0) { /* paced, so that moves find the workers mid-loop */
            struct timespec pause = {0, 2 * 1000 * 1000};
            nanosleep(&pause, NULL);
        }
        if (id == 0 && pthread_kill(workers[1 + s % (WORKERS - 1)], SIGUSR1) != 0)
            kill_failures++;
        pthread_mutex_lock(&lock);
        while (turn != id)
            pthread_cond_wait(&turn_cv, &lock);
        snprintf(line, sizeof(line), "step %d worker %d acc %016llx\n", s, id, acc);
        say(line);
        turn = (turn + 1) % WORKERS;
        pthread_cond_broadcast(&turn_cv);
        pthread_mutex_unlock(&lock);
        pthread_barrier_wait(&step_barrier);
    }
    return (void *)(long)(tid_now() == tid);
}

static void *helper_until_half(void *arg)
{
    (void)arg;
    my_slot = WORKERS;
    gate_wait("half");
    return (void *)(long)tid_now();
}

/* made while away: its tid here is its own; raise reaches it; it sees its own gettid */
static void *helper_made_late(void *arg)
{
    pid_t tid = tid_now();

    (void)arg;
    my_slot = WORKERS + 1;
    raise(SIGUSR1);
    return (void *)(long)(usr1_seen == 1 && tid_now() == tid);
}

static void *reader(void *arg)
{
    char buf[4096];
    unsigned long long bytes = 0, sum = 0;
    ssize_t n;

    (void)arg;
    while ((n = read(0, buf, sizeof(buf))) > 0) {
        for (ssize_t i = 0; i < n; i++)
            sum = sum * 31 + (unsigned char)buf[i];
        bytes += (unsigned long long)n;
    }
    char *line = malloc(128);
    snprintf(line, 128, "reader: %llu bytes, sum %016llx, end %s\n", bytes, sum,
             n == 0 ? "EOF" : "error");
    return line;
}

int main(int argc, char **argv)
{
    struct sigaction sa = {.sa_handler = on_usr1, .sa_flags = SA_RESTART};
    pthread_t early, late, rd;
    char line[160];
    void *res;
    int with_stdin = argc > 3 && strcmp(argv[3], "stdin") == 0;

    if (argc < 3 || (steps = atoi(argv[1])) < 1) {
        fprintf(stderr, "usage: mosthreads STEPS GATE_DIR [stdin]\n");
        return 2;
    }
    gates = argv[2];
    sigaction(SIGUSR1, &sa, NULL);
    pthread_barrier_init(&step_barrier, NULL, WORKERS);
    pthread_create(&early, NULL, helper_until_half, NULL);
    if (with_stdin)
        pthread_create(&rd, NULL, reader, NULL);
    for (long i = 0; i < WORKERS; i++)
        pthread_create(&workers[i], NULL, worker, (void *)i);
    pthread_join(early, &res);
    int early_ok = (long)res > 0;
    pthread_create(&late, NULL, helper_made_late, NULL);
    pthread_join(late, &res);
    int late_ok = (long)res == 1;
    /* a worker asked about by the tid glibc cached for it (away: the one from home) */
    cpu_set_t cpus;
    pthread_attr_t attr;
    int aff = pthread_getaffinity_np(workers[1], sizeof(cpus), &cpus);
    int attr_rc = pthread_getattr_np(workers[1], &attr);
    if (attr_rc == 0)
        pthread_attr_destroy(&attr);
    for (int i = 0; i < WORKERS; i++) {
        pthread_join(workers[i], &res);
        snprintf(line, sizeof(line), "worker %d: %d SIGUSR1, tid stable: %s\n", i,
                 (int)usr1_count[i], res ? "yes" : "no");
        say(line);
    }
    snprintf(line, sizeof(line), "pthread_kill failures: %llu\nhelper joined: %s\n"
             "late helper: %s\n", kill_failures, early_ok ? "yes" : "no",
             late_ok ? "raise reached it, tid stable" : "FAILED");
    say(line);
    snprintf(line, sizeof(line), "a worker's affinity: %s, its attributes: %s\n",
             aff ? strerror(aff) : "read", attr_rc ? strerror(attr_rc) : "read");
    say(line);
    if (with_stdin) {
        pthread_join(rd, &res);
        say(res);
        free(res);
    }
    return 0;
}
