/* Stay reasons for a process's own sandbox: a seccomp filter, no_new_privs, a Landlock domain
 * or a user namespace of its own keep it where it is (the image would carry none of them); a
 * guest's filter and no_new_privs (mos's own, sandbox_ours) do not. An OpenMPI rank's PMIx
 * segment stays with a reason naming the setting that makes it movable. */
#include "mos/migrate.h"
#include "mos/status.h"

#include <dirent.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

enum sandbox { NONE, NNP, FILTER, LANDLOCK, USERNS, THREADED, PMIX_MAP, VADER_MAP };

static int allow_all_filter(void)
{
    struct sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    struct sock_fprog prog = {.len = 1, .filter = &allow};

    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
}

static int landlock_enter(void)
{
    struct landlock_ruleset_attr attr = {.handled_access_fs = LANDLOCK_ACCESS_FS_MAKE_SOCK};
    int fd = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0);

    if (fd < 0)
        return -1;
    int rc = (int)syscall(SYS_landlock_restrict_self, fd, 0);
    close(fd);
    return rc;
}

/* 0 when the sandbox is in place. */
static void *thread_parks(void *arg)
{
    (void)arg;
    for (;;)
        pause();
    return NULL;
}

/* Not a sandbox either: a shared writable map of a file named as OpenMPI's PMIx data store
 * names its segments, for the reason's hint. */
/* A shared writable map of a file named as OpenMPI names its segments: dir/sub/leaf, or
 * dir/leaf without sub (the file and its directories removed once mapped). */
static int mpi_map(const char *sub, const char *leaf)
{
    char dir[] = "/tmp/mos-stay.XXXXXX", path[128];
    int fd;
    void *p;

    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof(path), "%s%s%s", dir, sub ? "/" : "", sub ? sub : "");
    if (sub && mkdir(path, 0700) != 0)
        return -1;
    strcat(path, "/");
    strcat(path, leaf);
    fd = open(path, O_RDWR | O_CREAT, 0600);
    if (fd < 0 || ftruncate(fd, 4096) != 0)
        return -1;
    p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    unlink(path);
    if (sub) {
        *strrchr(path, '/') = '\0';
        rmdir(path);
    }
    rmdir(dir);
    return p == MAP_FAILED ? -1 : 0;
}

static int sandbox_enter(enum sandbox kind)
{
    pthread_t th;

    if (kind == PMIX_MAP) /* PMIx's data store (gds ds21) */
        return mpi_map("pmix_dstor_ds21_1", "smlockseg-1");
    if (kind == VADER_MAP) /* the vader BTL's shared-memory segment */
        return mpi_map(NULL, "vader_segment.node1.7f3e0001.1");

    if (kind == THREADED) /* not a sandbox: a second thread, for the guest's stay reason */
        return pthread_create(&th, NULL, thread_parks, NULL) == 0 ? 0 : -1;
    if (kind == USERNS)
        return unshare(CLONE_NEWUSER);
    if (kind != NONE && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return -1;
    if (kind == FILTER && allow_all_filter() != 0)
        return -1;
    return kind == LANDLOCK ? landlock_enter() : 0;
}

/* A child in the sandbox, parked in pause(): its pid, or -1 with errno when this machine cannot
 * make that sandbox (the child reports it before parking). */
static pid_t child_in(enum sandbox kind)
{
    int p[2], err = 0;
    pid_t pid;

    assert_int_equal(pipe(p), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        err = sandbox_enter(kind) == 0 ? 0 : (errno ? errno : EPERM);
        if (write(p[1], &err, sizeof(err)) != sizeof(err))
            _exit(1);
        close(p[1]);
        if (err)
            _exit(0);
        if (kind == THREADED) /* what the test runner left open is no business of this test */
            syscall(SYS_close_range, 3, ~0u, 0);
        pause();
        _exit(0);
    }
    close(p[1]);
    assert_int_equal(read(p[0], &err, sizeof(err)), sizeof(err));
    close(p[0]);
    if (err) {
        waitpid(pid, NULL, 0);
        errno = err;
        return -1;
    }
    return pid;
}

static void child_end(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* check's status for a child in that sandbox; the reason must contain want (when refused). */
static void expect(enum sandbox kind, int ours, int status, const char *want)
{
    struct mos_dump_opts opts = {.fds_at_home = 1, .sandbox_ours = ours};
    char reason[256] = "";
    pid_t pid = child_in(kind);

    if (pid < 0) {
        fprintf(stderr, "test_stay: sandbox %d cannot be made here (%s): not checked\n",
                (int)kind, strerror(errno));
        return;
    }
    int rc = mos_migrate_check(pid, &opts, reason, sizeof(reason));
    child_end(pid);
    if (rc != status)
        fprintf(stderr, "test_stay: sandbox %d: status %d, reason '%s'\n", (int)kind, rc, reason);
    assert_int_equal(rc, status);
    if (want)
        assert_non_null(strstr(reason, want));
}

static void test_plain_moves(void **state)
{
    (void)state;
    expect(NONE, 0, 0, NULL);
}

static void test_no_new_privs_stays(void **state)
{
    (void)state;
    expect(NNP, 0, MOS_E_NOT_MIGRATABLE, "no_new_privs");
}

static void test_seccomp_filter_stays(void **state)
{
    (void)state;
    expect(FILTER, 0, MOS_E_NOT_MIGRATABLE, "seccomp filter of its own");
}

static void test_landlock_stays(void **state)
{
    (void)state;
    expect(LANDLOCK, 0, MOS_E_NOT_MIGRATABLE, "Landlock");
}

static void test_user_namespace_stays(void **state)
{
    (void)state;
    expect(USERNS, 0, MOS_E_NOT_MIGRATABLE, "user namespace of its own");
}

/* An OpenMPI rank's PMIx and vader segments: the reason names the setting that makes the rank
 * movable. */
static void test_mpi_segment_hint(void **state)
{
    (void)state;
    expect(PMIX_MAP, 0, MOS_E_NOT_MIGRATABLE, "PMIX_MCA_gds=hash");
    expect(VADER_MAP, 0, MOS_E_NOT_MIGRATABLE, "mpirun --mca btl tcp,self");
}

/* A guest's filter and no_new_privs are mos's: it moves on (a user namespace still keeps it). */
static void test_guest_filter_is_ours(void **state)
{
    (void)state;
    expect(FILTER, 1, 0, NULL);
    expect(USERNS, 1, MOS_E_NOT_MIGRATABLE, "user namespace of its own");
}

/* Two threads: a native move and a guest move (fds at home) both take them, now that the
 * deputy serves a guest's threads concurrently. */
static void test_threads_move_either_way(void **state)
{
    struct mos_dump_opts native = {0}, guest = {.fds_at_home = 1, .sandbox_ours = 1};
    char reason[256] = "", path[64];
    pid_t pid = child_in(THREADED);
    int rc_guest = -1, rc_native = -1;

    (void)state;
    assert_true(pid > 0);
    /* until the child's second thread exists and it has closed the pipe it reported on (a
     * pipe fd is a reason of its own) */
    for (int i = 0; i < 2000 && (rc_native != 0 || rc_guest != 0); i++) {
        DIR *dir;
        int n = 0;
        snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
        if ((dir = opendir(path))) {
            for (struct dirent *e; (e = readdir(dir));)
                n += e->d_name[0] != '.';
            closedir(dir);
        }
        rc_native = n == 2 ? mos_migrate_check(pid, &native, reason, sizeof(reason)) : -1;
        rc_guest = n == 2 ? mos_migrate_check(pid, &guest, reason + 128, sizeof(reason) - 128)
                          : -1;
        if (rc_native != 0 || rc_guest != 0)
            usleep(1000);
    }
    child_end(pid);
    if (rc_native != 0 || rc_guest != 0)
        fprintf(stderr, "test_stay: two threads: native: %s; guest: %s\n", reason,
                reason + 128);
    assert_int_equal(rc_native, 0);
    assert_int_equal(rc_guest, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_moves),
        cmocka_unit_test(test_no_new_privs_stays),
        cmocka_unit_test(test_seccomp_filter_stays),
        cmocka_unit_test(test_landlock_stays),
        cmocka_unit_test(test_user_namespace_stays),
        cmocka_unit_test(test_guest_filter_is_ours),
        cmocka_unit_test(test_mpi_segment_hint),
        cmocka_unit_test(test_threads_move_either_way),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
