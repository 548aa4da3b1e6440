/* Unit tests of the one challenge-response (mos/auth.h): two ends over a socketpair, each
 * message sent as a kind byte and the payload, and a refusal as its own kind (as the transport
 * sends CLOSE), so both ends can learn of a wrong key; and scripted peers that lie or vanish. */
#include "mos/auth.h"
#include "mos/status.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#define KIND_MSG 'M'
#define KIND_REFUSED 'R'

struct end {
    int fd;
    int refused; /* times the exchange called refuse */
    int rc;
    uint8_t session[MOS_AUTH_SESSION_BYTES];
    mos_key_t key;
    const char *client_role, *server_role;
};

static int read_exact(int fd, void *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = read(fd, (uint8_t *)buf + got, len - got);
        if (n <= 0)
            return got == 0 ? MOS_E_PEER_GONE : MOS_E_TRUNCATED;
        got += (size_t)n;
    }
    return 0;
}

static int end_send(void *arg, enum mos_auth_msg msg, const void *buf, size_t len)
{
    struct end *e = arg;
    uint8_t out[1 + MOS_AUTH_SERVER_PROOF_BYTES] = {KIND_MSG};

    (void)msg;
    memcpy(out + 1, buf, len);
    return write(e->fd, out, 1 + len) == (ssize_t)(1 + len) ? 0 : MOS_E_PEER_GONE;
}

static int end_recv(void *arg, enum mos_auth_msg msg, void *buf, size_t len)
{
    struct end *e = arg;
    uint8_t kind;
    int rc = read_exact(e->fd, &kind, 1);

    (void)msg;
    if (rc != 0)
        return rc;
    if (kind == KIND_REFUSED)
        return MOS_E_AUTH;
    rc = read_exact(e->fd, buf, len);
    return rc == MOS_E_PEER_GONE ? MOS_E_TRUNCATED : rc;
}

static void end_refuse(void *arg)
{
    struct end *e = arg;
    uint8_t kind = KIND_REFUSED;

    e->refused++;
    if (write(e->fd, &kind, 1) != 1)
        e->refused = -1; /* fails the test's count */
}

static int end_run(struct end *e, int as_server)
{
    const struct mos_auth a = {
        .key = &e->key,
        .client_role = e->client_role ? e->client_role : "test-client",
        .server_role = e->server_role ? e->server_role : "test-server",
        .io = {.send = end_send, .recv = end_recv, .refuse = end_refuse, .arg = e},
    };

    e->rc = as_server ? mos_auth_server(&a, e->session) : mos_auth_client(&a, e->session);
    return e->rc;
}

static void *server_thread(void *arg)
{
    end_run(arg, 1);
    return NULL;
}

/* Run client c against server s over a fresh socketpair. */
static void pair_run(struct end *c, struct end *s)
{
    int sv[2];
    pthread_t t;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    c->fd = sv[0], s->fd = sv[1];
    assert_int_equal(pthread_create(&t, NULL, server_thread, s), 0);
    end_run(c, 0);
    /* a client that gave up closes, so a server still waiting learns of it */
    shutdown(c->fd, SHUT_RDWR);
    assert_int_equal(pthread_join(t, NULL), 0);
    close(sv[0]);
    close(sv[1]);
}

static void ends_make(struct end *c, struct end *s, uint8_t client_key, uint8_t server_key)
{
    memset(c, 0, sizeof(*c));
    memset(s, 0, sizeof(*s));
    memset(&c->key, client_key, sizeof(c->key));
    memset(&s->key, server_key, sizeof(s->key));
}

static void test_right_key(void **state)
{
    (void)state;
    struct end c, s;
    uint8_t first[MOS_AUTH_SESSION_BYTES];

    ends_make(&c, &s, 5, 5);
    pair_run(&c, &s);
    assert_int_equal(c.rc, 0);
    assert_int_equal(s.rc, 0);
    assert_int_equal(c.refused + s.refused, 0);
    /* both ends hold the same session secret, which is not the key */
    assert_memory_equal(c.session, s.session, sizeof(c.session));
    assert_memory_not_equal(c.session, c.key.bytes, sizeof(c.session));
    memcpy(first, c.session, sizeof(first));
    /* fresh nonces: another run gives another session secret */
    ends_make(&c, &s, 5, 5);
    pair_run(&c, &s);
    assert_int_equal(c.rc, 0);
    assert_memory_equal(c.session, s.session, sizeof(c.session));
    assert_memory_not_equal(c.session, first, sizeof(first));
}

static void test_wrong_key(void **state)
{
    (void)state;
    struct end c, s;

    ends_make(&c, &s, 5, 6);
    pair_run(&c, &s);
    /* the client sees the server's proof fail and refuses; the server learns it was refused */
    assert_int_equal(c.rc, MOS_E_AUTH);
    assert_int_equal(s.rc, MOS_E_AUTH);
    assert_int_equal(c.refused, 1);
    assert_int_equal(s.refused, 0);
}

static void test_roles_bound(void **state)
{
    (void)state;
    struct end c, s;

    /* same key, but the client expects another server role: the proof does not carry over */
    ends_make(&c, &s, 5, 5);
    c.server_role = "other-server";
    pair_run(&c, &s);
    assert_int_equal(c.rc, MOS_E_AUTH);
    assert_int_equal(s.rc, MOS_E_AUTH);
}

/* A scripted client against a real server: it sends cut bytes of the challenge message and
 * stops there, or the whole challenge, reads the server's proof and answers with a proof made
 * with key (or, with reflect, the server's own MAC sent back). */
static void scripted_client(const mos_key_t *key, int reflect, size_t cut, int *server_rc,
                            int *refused)
{
    struct end s;
    uint8_t msg[1 + MOS_AUTH_SERVER_PROOF_BYTES] = {KIND_MSG}, proof[1 + MOS_AUTH_SERVER_PROOF_BYTES];
    int sv[2];
    pthread_t t;

    memset(&s, 0, sizeof(s));
    memset(&s.key, 5, sizeof(s.key));
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    s.fd = sv[1];
    assert_int_equal(pthread_create(&t, NULL, server_thread, &s), 0);
    memset(msg + 1, 0x42, MOS_AUTH_NONCE_BYTES); /* nc */
    if (cut < 1 + MOS_AUTH_CHALLENGE_BYTES) {
        assert_int_equal(write(sv[0], msg, cut), (ssize_t)cut);
    } else {
        assert_int_equal(write(sv[0], msg, 1 + MOS_AUTH_CHALLENGE_BYTES), 1 + MOS_AUTH_CHALLENGE_BYTES);
        assert_int_equal(read_exact(sv[0], proof, sizeof(proof)), 0);
        if (reflect) {
            memcpy(msg + 1, proof + 1 + MOS_AUTH_NONCE_BYTES, MOS_MAC_BYTES);
        } else {
            struct mos_mac_part parts[] = {{"test-client", 11},
                                           {msg + 1, MOS_AUTH_NONCE_BYTES},
                                           {proof + 1, MOS_AUTH_NONCE_BYTES}};
            mos_key_mac(key, parts, 3, msg + 1);
        }
        assert_int_equal(write(sv[0], msg, 1 + MOS_MAC_BYTES), 1 + MOS_MAC_BYTES);
    }
    shutdown(sv[0], SHUT_WR);
    assert_int_equal(pthread_join(t, NULL), 0);
    close(sv[0]);
    close(sv[1]);
    *server_rc = s.rc;
    *refused = s.refused;
}

static void test_server_checks_client(void **state)
{
    (void)state;
    mos_key_t right, wrong;
    int rc, refused;

    memset(&right, 5, sizeof(right));
    memset(&wrong, 6, sizeof(wrong));
    scripted_client(&right, 0, SIZE_MAX, &rc, &refused);
    assert_int_equal(rc, 0); /* the script speaks the protocol */
    assert_int_equal(refused, 0);
    scripted_client(&wrong, 0, SIZE_MAX, &rc, &refused);
    assert_int_equal(rc, MOS_E_AUTH);
    assert_int_equal(refused, 1);
    scripted_client(&right, 1, SIZE_MAX, &rc, &refused); /* the server's own proof reflected */
    assert_int_equal(rc, MOS_E_AUTH);
    assert_int_equal(refused, 1);
}

static void test_truncated_client(void **state)
{
    (void)state;
    mos_key_t right;
    int rc, refused;

    memset(&right, 5, sizeof(right));
    scripted_client(&right, 0, 0, &rc, &refused);
    assert_int_equal(rc, MOS_E_PEER_GONE);
    scripted_client(&right, 0, 1 + MOS_AUTH_CHALLENGE_BYTES / 2, &rc, &refused);
    assert_int_equal(rc, MOS_E_TRUNCATED);
    assert_int_equal(refused, 0);
}

static void *truncating_server(void *arg)
{
    int fd = *(int *)arg;
    uint8_t challenge[1 + MOS_AUTH_CHALLENGE_BYTES], half[1 + MOS_AUTH_SERVER_PROOF_BYTES / 2];

    memset(half, KIND_MSG, sizeof(half));
    if (read_exact(fd, challenge, sizeof(challenge)) == 0 && write(fd, half, sizeof(half)) > 0)
        shutdown(fd, SHUT_WR);
    return NULL;
}

static void test_truncated_server(void **state)
{
    (void)state;
    struct end c;
    int sv[2];
    pthread_t t;

    memset(&c, 0, sizeof(c));
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    c.fd = sv[0];
    assert_int_equal(pthread_create(&t, NULL, truncating_server, &sv[1]), 0);
    assert_int_equal(end_run(&c, 0), MOS_E_TRUNCATED);
    assert_int_equal(c.refused, 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    close(sv[0]);
    close(sv[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_right_key),
        cmocka_unit_test(test_wrong_key),
        cmocka_unit_test(test_roles_bound),
        cmocka_unit_test(test_server_checks_client),
        cmocka_unit_test(test_truncated_client),
        cmocka_unit_test(test_truncated_server),
    };
    return cmocka_run_group_tests_name("auth", tests, NULL, NULL);
}
