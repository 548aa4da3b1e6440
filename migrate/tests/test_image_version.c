/* Images of another format version are refused in one line naming both versions (before any
 * other field is looked at: a version 1 IMAGE record is shorter than today's; a version 2 one
 * has FDS entries without the pipe fields), and an image whose THREAD records disagree with
 * IMAGE's thread count is refused too. */
#include "image_template.h"

#include "mos/log.h"
#include "mos/status.h"

#include <elf.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void put(struct membuf *mb, uint32_t magic, const void *p, size_t len)
{
    struct mos_img_writer w = {.io = &mb->io};
    struct iovec part = {(void *)p, len};
    assert_int_equal(mos_img_put(&w, magic, &part, 1), 0);
}

/* IMAGE and a valid CORE; what follows does not matter to these checks. */
static int read_image(uint32_t version, size_t image_len, uint32_t nthreads)
{
    static struct membuf mb;
    struct mos_rec_image img = {.tag = "MOSIMAGE", .format_version = version,
                                .arch = EM_X86_64, .page_size = 4096, .src_pid = 42,
                                .host = "t", .nthreads = nthreads};
    struct mos_rec_core core = {.xstate_len = 576, .umask = 022, .affinity_words = 1,
                                .affinity = {1}};
    uint8_t buf[sizeof(core) + 576] = {0};
    struct mos_img_meta m;
    struct mos_img_reader rd = {.io = &mb.io};

    memset(&mb, 0, sizeof(mb));
    mb.io.ops = &mem_ops;
    core.regs.cs = 0x33;
    core.regs.ss = 0x2b;
    memcpy(buf, &core, sizeof(core));
    put(&mb, MOS_REC_IMAGE, &img, image_len);
    put(&mb, MOS_REC_CORE, buf, sizeof(buf));
    img_errors_reset();
    int rc = mos_img_meta_read(&rd, &m);
    mos_img_reader_free(&rd);
    free(mb.data);
    return rc;
}

static void test_older_versions_refused_in_one_line(void **state)
{
    (void)state;
    /* a version 1 IMAGE record ended at host[]: no thread count */
    int rc = read_image(1, offsetof(struct mos_rec_image, nthreads), 0);
    assert_int_equal(rc, MOS_E_VERSION);
    assert_int_equal(img_errors()->count, 1);
    assert_non_null(strstr(img_errors()->last, "image format version 1; this mos reads version 6"));
    assert_int_equal(read_image(2, sizeof(struct mos_rec_image), 1), MOS_E_VERSION);
    assert_non_null(strstr(img_errors()->last, "image format version 2; this mos reads version 6"));
    /* 3: before shared anonymous memory */
    assert_int_equal(read_image(3, sizeof(struct mos_rec_image), 1), MOS_E_VERSION);
    assert_non_null(strstr(img_errors()->last, "image format version 3; this mos reads version 6"));
    /* 4: before unix socket pairs */
    assert_int_equal(read_image(4, sizeof(struct mos_rec_image), 1), MOS_E_VERSION);
    assert_non_null(strstr(img_errors()->last, "image format version 4; this mos reads version 6"));
    /* 5: before memfd objects */
    assert_int_equal(read_image(5, sizeof(struct mos_rec_image), 1), MOS_E_VERSION);
    assert_non_null(strstr(img_errors()->last, "image format version 5; this mos reads version 6"));
}

static void test_newer_version_refused(void **state)
{
    (void)state;
    assert_int_equal(read_image(7, sizeof(struct mos_rec_image), 1), MOS_E_VERSION);
    assert_non_null(strstr(img_errors()->last, "image format version 7"));
}

static void test_thread_count_checked(void **state)
{
    (void)state;
    assert_int_equal(read_image(MOS_IMG_FORMAT_VERSION, sizeof(struct mos_rec_image), 0), MOS_E_IMAGE);
    assert_non_null(strstr(img_errors()->last, "thread count"));
    assert_int_equal(read_image(MOS_IMG_FORMAT_VERSION, sizeof(struct mos_rec_image),
                                MOS_IMG_MAX_THREADS + 1),
                     MOS_E_IMAGE);
    /* two threads announced, but MM follows where a THREAD belongs: the stream ends first */
    assert_int_not_equal(read_image(MOS_IMG_FORMAT_VERSION, sizeof(struct mos_rec_image), 2), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_older_versions_refused_in_one_line),
        cmocka_unit_test(test_newer_version_refused),
        cmocka_unit_test(test_thread_count_checked),
    };
    mos_log_set_sink(img_errors_sink, NULL);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
