/* The transport's wire format: the one place that defines it (see README.md "Wire format").
 *
 * Every message on a TCP stream is a mos frame (mos/frame.h: little-endian, the common 12-byte
 * header with magic "MOSW") followed by one transport field, 16 bytes in all:
 *   magic "MOSW" (4) | version (2) | type (2) | payload length (4) | id (4)
 * The parser checks magic, version, type and the length against the type's limit before the
 * payload is read. Payloads are fixed-layout records (little-endian integers) or, for page
 * runs, a run table followed by the page data. The same page-run payload fills a verbs staging
 * slot.
 *
 * Private to transport/: other modules use mos/transport.h. */
#ifndef MOS_TRANSPORT_WIRE_H
#define MOS_TRANSPORT_WIRE_H

#include "mos/auth.h"
#include "mos/frame.h"
#include "mos/key.h"
#include "mos/seal.h"
#include "mos/transport.h"

#include <stddef.h>
#include <stdint.h>

#define MOS_WIRE_MAGIC MOS_FRAME_MAGIC('M', 'O', 'S', 'W')
#define MOS_WIRE_VERSION 1
#define MOS_WIRE_HDR_BYTES (MOS_FRAME_HDR_BYTES + 4) /* the common header, then the id */
/* A control message is sealed (mos/seal.h): its payload is the ciphertext, then the tag. */
#define MOS_WIRE_MAX_CONTROL (MOS_TP_MAX_CONTROL + MOS_SEAL_TAG_BYTES)
#define MOS_WIRE_MAX_BULK (64u * 1024 * 1024)   /* one page-run frame (= one staging slot) */
#define MOS_WIRE_MAX_RUNS 4096u                 /* runs in one frame */
#define MOS_WIRE_TOKEN_BYTES 16

enum mos_wire_type {
    MOS_WIRE_HELLO = 1,     /* capabilities, after the key proof */
    MOS_WIRE_CHALLENGE = 2, /* client nonce (mos/auth.h) */
    MOS_WIRE_PROOF = 3,     /* nonce (server only) + MAC (mos/auth.h) */
    MOS_WIRE_CONTROL = 4,   /* a control request or one-way message */
    MOS_WIRE_PAGE_RUN = 5,  /* run table + pages */
    MOS_WIRE_CLOSE = 6,     /* reason code, then the sender closes */
    MOS_WIRE_REPLY = 7,     /* a control reply; id = the request's id */
    MOS_WIRE_BULK_END = 8,  /* end of one bulk send: frame and page counts */
    MOS_WIRE_ATTACH = 9,    /* first message of a tcp bulk stream: session token + MAC */
    MOS_WIRE_SETUP = 10,    /* client -> server: verbs set up, or fall back to tcp */
    MOS_WIRE_TYPE_MAX = MOS_WIRE_SETUP,
};

struct mos_wire_hdr {
    uint16_t type;
    uint32_t length; /* payload bytes after the header */
    uint32_t id;     /* request id, echoed in the reply; 0 for one-way frames */
};

/* The transport as a mos frame protocol (magic, version, type table and limits). */
extern const struct mos_frame_proto mos_wire_proto;

/* Encode a header of the current version into buf (MOS_WIRE_HDR_BYTES). */
void mos_wire_hdr_make(uint16_t type, uint32_t length, uint32_t id, uint8_t *buf);
/* Parse and check a header: MOS_E_PROTO for bad magic, type or length, MOS_E_VERSION for
 * another version, MOS_E_TRUNCATED when len < MOS_WIRE_HDR_BYTES (and what is there is a valid
 * start: a wrong magic is MOS_E_PROTO from its first byte). */
int mos_wire_hdr_decode(const uint8_t *buf, size_t len, struct mos_wire_hdr *hdr);
/* The payload limit of a message type (0 for a type the transport does not know). */
uint32_t mos_wire_payload_limit(uint16_t type);

/* Page-run frame payload:
 *   n_runs (4) | reserved (4) | n_runs x { addr (8) | npages (4) | reserved (4) } | pages | tag
 * The pages follow the table in run order; the tag (MOS_WIRE_FRAME_TAG_BYTES) is the Poly1305
 * of the table and the pages under the connection's bulk key and the frame's number, which
 * both ends count (mos/seal.h): the pages are authenticated in place, never copied for it.
 * Payload length = 8 + 16 n_runs + 4096 sum(npages) + 16. mos_wire_runs_decode and
 * mos_wire_runs_table_decode take the length without the tag. */
#define MOS_WIRE_FRAME_TAG_BYTES MOS_SEAL_TAG_BYTES
#define MOS_WIRE_RUN_HDR_BYTES 8
#define MOS_WIRE_RUN_BYTES 16
static inline size_t mos_wire_runs_table_bytes(size_t n_runs)
{
    return MOS_WIRE_RUN_HDR_BYTES + n_runs * MOS_WIRE_RUN_BYTES;
}
/* Encode n runs into buf (mos_wire_runs_table_bytes(n) bytes). */
void mos_wire_runs_encode(const struct mos_page_run *runs, size_t n, uint8_t *buf);
/* Parse a page-run payload of len bytes. On success *runs (up to max_runs entries, caller's
 * array), *n and *data (the first page) describe it. MOS_E_PROTO when the counts and the
 * length disagree, a run is empty, an address is not page-aligned or wraps, or n > max_runs. */
int mos_wire_runs_decode(const uint8_t *buf, size_t len, struct mos_page_run *runs,
                         size_t max_runs, size_t *n, const uint8_t **data);

/* The same checks on the table alone (len bytes of it read so far, at least the whole table),
 * for a payload of payload_len bytes. */
int mos_wire_runs_table_decode(const uint8_t *buf, size_t len, size_t payload_len,
                               struct mos_page_run *runs, size_t max_runs, size_t *n);

/* Capabilities sent in HELLO (both directions, after the key proof). */
#define MOS_WIRE_CAP_VERBS 1u
struct mos_wire_hello {
    uint32_t caps;        /* MOS_WIRE_CAP_* this side can do */
    uint32_t backend;     /* client: wanted (enum mos_tp_backend); server: chosen */
    uint32_t slot_bytes;  /* bulk frame / staging slot size */
    uint32_t slot_count;
    uint32_t n_qps;       /* bulk QPs (verbs) */
    uint16_t tcp_port;    /* server: port of this session's bulk stream listener */
    uint16_t cm_port;     /* server: rdma_cm port of this session */
    uint8_t token[MOS_WIRE_TOKEN_BYTES]; /* server: session token */
    char reason[64];      /* why verbs is not offered ("" when it is) */
};
#define MOS_WIRE_HELLO_BYTES (24 + MOS_WIRE_TOKEN_BYTES + 64)
/* On the wire a hello is sealed with the control keys (the first message each way). */
#define MOS_WIRE_HELLO_SEALED_BYTES (MOS_WIRE_HELLO_BYTES + MOS_SEAL_TAG_BYTES)
void mos_wire_hello_encode(const struct mos_wire_hello *h, uint8_t *buf);
int mos_wire_hello_decode(const uint8_t *buf, size_t len, struct mos_wire_hello *h);

/* CLOSE and SETUP payload: u32 code (a CLOSE reason; SETUP: 1 = verbs up) | text, not
 * NUL-terminated. */
#define MOS_WIRE_REASON_BYTES 128

/* CLOSE reasons. */
enum mos_wire_close_reason {
    MOS_WIRE_CLOSE_NORMAL = 0,
    MOS_WIRE_CLOSE_AUTH = 1,  /* the peer's key proof failed */
    MOS_WIRE_CLOSE_PROTO = 2, /* malformed message */
    MOS_WIRE_CLOSE_BACKEND = 3, /* the wanted backend cannot be used */
};

/* BULK_END payload: frames (8) | pages (8) | tag (16, over the counts, under the bulk key and
 * the end marker's own number: MOS_WIRE_END_NONCE | the count of end markers before it). */
#define MOS_WIRE_BULK_END_BYTES (16 + MOS_SEAL_TAG_BYTES)
#define MOS_WIRE_END_NONCE (1ull << 63)
#define MOS_WIRE_BULK_ABORTED UINT64_MAX /* frames: the sender's source failed mid-way */

#endif
