/* mospeer KEYFILE HOST:PORT JSON: one request to a mosd's transport port as another node would
 * send it (the key proved first), its reply on stdout. For tests that forge what a node may
 * send; exit 1 with one line when the request could not be made. */
#include "mos/key.h"
#include "mos/status.h"
#include "mos/transport.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    struct mos_tp_opts opts;
    mos_tp_conn_t *c = NULL;
    char reply[4096];
    size_t got = 0;
    mos_key_t key;
    int rc;

    if (argc != 4) {
        fprintf(stderr, "usage: mospeer KEYFILE HOST:PORT JSON\n");
        return 2;
    }
    if (mos_key_load(argv[1], &key) != 0)
        return 1;
    mos_tp_opts_default(&opts);
    opts.key = &key;
    rc = mos_tp_connect(argv[2], &opts, &c);
    if (rc == 0)
        rc = mos_tp_ctl_call(c, argv[3], strlen(argv[3]), reply, sizeof(reply) - 1, &got);
    mos_tp_close(c);
    if (rc != 0) {
        fprintf(stderr, "mospeer: %s: %s\n", argv[2], mos_strerror(rc));
        return 1;
    }
    reply[got] = '\0';
    printf("%s\n", reply);
    return 0;
}
