/* A process image stream (mos/migrate.h's mos_img_io) carried by a transport connection, so
 * a migration gets the transport's key proof and backend: the records travel as control
 * messages, the page contents as bulk page runs (send_pages / recv_pages: read from the frozen
 * process straight into the send path or registered verbs slot on one side, written into the
 * husk on the other).
 *
 * Test hook: MOS_TEST_BULK_FAULT=outside (a run outside every VMA of the image) or =short
 * (the last page left out) makes the sending side's bulk transfer wrong on purpose; =die
 * makes the receiving side kill itself after the first bulk frame. */
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
    int no_bulk;                      /* pages in control messages (PAGES records), as before */
    struct mos_page_run *runs;        /* conversion buffer for the page channel */
    size_t runs_cap;
    mos_img_place_fn place;           /* recv_pages: the migrate library's consumer */
    void *place_arg;
    uint64_t ctl_bytes;               /* image bytes sent or received in control messages */
    uint64_t bulk_pages, bulk_frames; /* pages sent or received in bulk */
};

/* Set up s over conn; 0 or -ENOMEM. tp_img_stream_fini frees the buffers, not the conn, and
 * logs what travelled how (one info line, when anything did). MOS_IMG_NO_BULK=1 in the
 * environment, or tp_img_stream_no_bulk, makes the sending side keep the pages in control
 * messages (PAGES records); a receiving side takes either form. */
int tp_img_stream_init(struct tp_img_stream *s, mos_tp_conn_t *conn, int timeout_ms);
void tp_img_stream_no_bulk(struct tp_img_stream *s);
void tp_img_stream_fini(struct tp_img_stream *s);

#endif
