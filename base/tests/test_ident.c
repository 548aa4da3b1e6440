/* mos_ident_check against this machine's user database: nobody's own identity passes; gid 0,
 * an extra group or an unknown uid is refused with a line naming it. */
#include "mos/ident.h"
#include "mos/status.h"

#include <grp.h>
#include <pwd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static struct passwd nobody;
static gid_t nobody_groups[64];
static int n_nobody_groups;

static int setup(void **state)
{
    struct passwd *pw = getpwnam("nobody");

    (void)state;
    if (!pw) {
        fprintf(stderr, "test_ident: this machine has no user 'nobody'\n");
        return -1;
    }
    nobody = *pw;
    n_nobody_groups = 64;
    return getgrouplist(pw->pw_name, pw->pw_gid, nobody_groups, &n_nobody_groups) < 0 ? -1 : 0;
}

static int nobody_has(gid_t g)
{
    for (int i = 0; i < n_nobody_groups; i++)
        if (nobody_groups[i] == g)
            return 1;
    return 0;
}

static void own_identity_passes(void **state)
{
    char why[200] = "";

    (void)state;
    assert_int_equal(mos_ident_check(nobody.pw_uid, nobody.pw_gid, NULL, 0, why, sizeof(why)), 0);
    assert_int_equal(mos_ident_check(nobody.pw_uid, nobody.pw_gid, nobody_groups,
                                     (size_t)n_nobody_groups, why, sizeof(why)),
                     0);
}

static void gid_zero_refused(void **state)
{
    char why[200] = "";

    (void)state;
    assert_false(nobody_has(0)); /* a precondition: on this machine nobody is not in group 0 */
    assert_int_equal(mos_ident_check(nobody.pw_uid, 0, NULL, 0, why, sizeof(why)),
                     MOS_E_IDENTITY);
    assert_non_null(strstr(why, "gid 0 is not a group of uid"));
}

static void extra_group_refused(void **state)
{
    gid_t groups[2] = {nobody.pw_gid, 0};
    char why[200] = "";

    (void)state;
    assert_int_equal(mos_ident_check(nobody.pw_uid, nobody.pw_gid, groups, 2, why, sizeof(why)),
                     MOS_E_IDENTITY);
    assert_non_null(strstr(why, "group 0 is not a group of uid"));
    assert_null(strchr(why, '\n'));
}

static void unknown_uid_refused(void **state)
{
    uid_t uid = 3999999999u;
    char why[200] = "";

    (void)state;
    assert_null(getpwuid(uid)); /* precondition: no such user */
    assert_int_equal(mos_ident_check(uid, 0, NULL, 0, why, sizeof(why)), MOS_E_IDENTITY);
    assert_non_null(strstr(why, "is not a user here"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(own_identity_passes),
        cmocka_unit_test(gid_zero_refused),
        cmocka_unit_test(extra_group_refused),
        cmocka_unit_test(unknown_uid_refused),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
