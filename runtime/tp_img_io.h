/* A process image stream (mos/migrate.h's mos_img_io) carried by a transport connection's
 * control messages, so a migration gets the transport's key proof and backend. */
#ifndef MOS_TP_IMG_IO_H
#define MOS_TP_IMG_IO_H

#include "mos/migrate.h"
#include "mos/transport.h"

struct tp_img_stream {
    struct mos_img_io io; /* first: the migrate library is handed &stream->io */
    mos_tp_conn_t *conn;
    uint8_t *buf;
    size_t len, pos;
    int timeout_ms;
};

/* Set up s over conn; 0 or -ENOMEM. tp_img_stream_fini frees the buffer, not the conn. */
int tp_img_stream_init(struct tp_img_stream *s, mos_tp_conn_t *conn, int timeout_ms);
void tp_img_stream_fini(struct tp_img_stream *s);

#endif
