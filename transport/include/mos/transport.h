/* Page transport between nodes: control messages and bulk page runs.
 *
 * Every message on the wire starts with a fixed 16-byte header in network byte order; the
 * parser checks magic, version, type and length against limits before anything is used. */
#ifndef MOS_TRANSPORT_H
#define MOS_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#define MOS_WIRE_MAGIC 0x4d4f5357u /* "MOSW" */
#define MOS_WIRE_VERSION 1
#define MOS_WIRE_HDR_BYTES 16
#define MOS_WIRE_MAX_CONTROL (64u * 1024)       /* control message payload */
#define MOS_WIRE_MAX_BULK (64u * 1024 * 1024)   /* one bulk frame payload */

enum mos_wire_type {
    MOS_WIRE_HELLO = 1,
    MOS_WIRE_CHALLENGE = 2,
    MOS_WIRE_PROOF = 3,
    MOS_WIRE_CONTROL = 4,
    MOS_WIRE_PAGE_RUN = 5,
    MOS_WIRE_CLOSE = 6,
    MOS_WIRE_TYPE_MAX = MOS_WIRE_CLOSE,
};

struct mos_wire_hdr {
    uint32_t magic;
    uint16_t version;
    uint16_t type;
    uint32_t length; /* payload bytes after the header */
    uint32_t id;     /* request id, echoed in the reply; 0 for one-way frames */
};

/* Write hdr into buf (MOS_WIRE_HDR_BYTES). */
void mos_wire_hdr_encode(const struct mos_wire_hdr *hdr, uint8_t *buf);
/* Parse and check a header: MOS_E_PROTO for bad magic, type or length, MOS_E_VERSION for
 * another version, MOS_E_TRUNCATED when len < MOS_WIRE_HDR_BYTES. */
int mos_wire_hdr_decode(const uint8_t *buf, size_t len, struct mos_wire_hdr *hdr);

#endif
