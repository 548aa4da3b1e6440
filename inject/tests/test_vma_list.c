#include "mos/procfs.h"
#include "mos/status.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static void test_parse_line(void **state)
{
    (void)state;
    struct mos_vma v;

    assert_int_equal(mos_vma_parse_line("7f00a000-7f00c000 r-xp 00002000 08:01 1234   "
                                        "/usr/lib/with space.so\n",
                                        &v),
                     0);
    assert_int_equal(v.start, 0x7f00a000);
    assert_int_equal(v.end, 0x7f00c000);
    assert_int_equal(v.prot, PROT_READ | PROT_EXEC);
    assert_int_equal(v.offset, 0x2000);
    assert_int_equal(v.inode, 1234);
    assert_string_equal(v.path, "/usr/lib/with space.so");
    assert_int_equal(mos_vma_parse_line("1000-2000 rw-s 0 00:00 0\n", &v), 0);
    assert_true(v.shared);
    assert_string_equal(v.path, "");
    assert_false(mos_vma_shared_anon(&v));
    /* MAP_SHARED|MAP_ANONYMOUS as the kernel shows it; private /dev/zero and a memfd are not */
    assert_int_equal(mos_vma_parse_line("1000-3000 rw-s 00000000 00:01 77 /dev/zero (deleted)\n",
                                        &v), 0);
    assert_true(mos_vma_shared_anon(&v));
    assert_int_equal(mos_vma_parse_line("1000-3000 rw-p 00000000 00:01 77 /dev/zero (deleted)\n",
                                        &v), 0);
    assert_false(mos_vma_shared_anon(&v));
    assert_int_equal(mos_vma_parse_line("1000-3000 rw-s 00000000 00:01 78 /memfd:x (deleted)\n",
                                        &v), 0);
    assert_false(mos_vma_shared_anon(&v));
    assert_int_equal(mos_vma_parse_line("2000-1000 rw-p 0 00:00 0\n", &v), MOS_E_PROTO);
    assert_int_equal(mos_vma_parse_line("garbage\n", &v), MOS_E_PROTO);
    assert_int_equal(mos_vma_parse_line("1001-2000 rw-p 0 00:00 0\n", &v), MOS_E_PROTO);
}

/* /proc/PID/limits, read for a child whose limits we set: the same as getrlimit says, and an
 * unlimited one as RLIM_INFINITY. */
static void test_rlimits_read(void **state)
{
    uint64_t lim[MOS_PROC_RLIMITS][2];
    struct rlimit mine;
    int p[2], st;
    char go;

    (void)state;
    assert_int_equal(pipe(p), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        struct rlimit ml = {1264640, 2402304};
        close(p[1]);
        _exit(setrlimit(RLIMIT_MEMLOCK, &ml) != 0 || read(p[0], &go, 1) < 0);
    }
    close(p[0]);
    for (int i = 0; i < 1000; i++) { /* until the child has set its limit */
        assert_int_equal(mos_proc_rlimits_read(child, lim), 0);
        if (lim[RLIMIT_MEMLOCK][0] == 1264640)
            break;
        usleep(1000);
    }
    assert_int_equal(lim[RLIMIT_MEMLOCK][0], 1264640);
    assert_int_equal(lim[RLIMIT_MEMLOCK][1], 2402304);
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &mine), 0);
    assert_int_equal(lim[RLIMIT_NOFILE][0], mine.rlim_cur);
    assert_int_equal(lim[RLIMIT_NOFILE][1], mine.rlim_max);
    assert_int_equal(getrlimit(RLIMIT_CORE, &mine), 0);
    assert_int_equal(lim[RLIMIT_CORE][1], mine.rlim_max); /* often unlimited */
    close(p[1]);
    assert_int_equal(waitpid(child, &st, 0), child);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_not_equal(mos_proc_rlimits_read(child, lim), 0); /* gone */
}

static void test_read_self_finds_mapping(void **state)
{
    (void)state;
    struct mos_vma_list list;
    long page = sysconf(_SC_PAGESIZE);
    char *p = mmap(NULL, 3 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int found = 0, stack = 0;

    assert_true(p != MAP_FAILED);
    mprotect(p + page, page, PROT_NONE); /* splits into three VMAs */
    assert_int_equal(mos_vma_list_read(getpid(), &list), 0);
    for (size_t i = 0; i < list.count; i++) {
        if (list.vmas[i].start == (uintptr_t)(p + page) &&
            list.vmas[i].end == (uintptr_t)(p + 2 * page) && list.vmas[i].prot == 0)
            found = 1;
        if (strcmp(list.vmas[i].path, "[stack]") == 0)
            stack = 1;
    }
    assert_true(found);
    assert_true(stack);
    mos_vma_list_free(&list);
    munmap(p, 3 * page);
    assert_true(mos_vma_list_read(999999999, &list) < 0);
}

static void test_status_texts(void **state)
{
    const char *const keys[] = {"Tgid:", "NoSuchKey:", "Name:"};
    char tgid[32] = "", none[32] = "kept", name[32] = "";
    char *const vals[] = {tgid, none, name};
    char want[32];

    (void)state;
    assert_int_equal(mos_proc_status_texts(getpid(), keys, vals, 3, sizeof(tgid)), 2);
    snprintf(want, sizeof(want), "%d", (int)getpid());
    assert_string_equal(tgid, want);
    assert_string_equal(none, "kept"); /* not found: left as it was */
    assert_string_equal(name, "test_vma_list");
    assert_int_equal(mos_proc_status_text(getpid(), "Tgid:", name, 3), 1);
    assert_int_equal(strlen(name), 2); /* cut to fit */
    assert_true(mos_proc_status_texts(999999999, keys, vals, 3, sizeof(tgid)) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_line),
        cmocka_unit_test(test_read_self_finds_mapping),
        cmocka_unit_test(test_rlimits_read),
        cmocka_unit_test(test_status_texts),
    };
    return cmocka_run_group_tests_name("vma_list", tests, NULL, NULL);
}
