/* The framing every mos protocol shares: one byte order and one frame header.
 *
 * All integers on every mos wire are little-endian (the byte order of every machine mos runs
 * on, so packing costs nothing), written and read with the helpers below, never with memcpy
 * of a host integer. Every frame starts with the same 12 bytes:
 *
 *   0  u32 magic      four ASCII letters naming the protocol (MOS_FRAME_MAGIC)
 *   4  u16 version    of that protocol
 *   6  u16 type       from the protocol's type table
 *   8  u32 length     payload bytes after the header (and after any fixed fields a protocol
 *                     adds to it: the transport's request id, gossip's counts)
 *
 * A protocol is described by a struct mos_frame_proto: its magic, its version, and a function
 * that says which types it knows and how long each may be. The decoder checks all of that
 * before a caller reads or trusts any payload byte. */
#ifndef MOS_FRAME_H
#define MOS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MOS_FRAME_HDR_BYTES 12

/* A magic from four letters: as a little-endian u32 on the wire, a dump reads "abcd". */
#define MOS_FRAME_MAGIC(a, b, c, d)                                                           \
    ((uint32_t)(uint8_t)(a) | (uint32_t)(uint8_t)(b) << 8 | (uint32_t)(uint8_t)(c) << 16 |    \
     (uint32_t)(uint8_t)(d) << 24)

static inline void mos_put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void mos_put_le32(uint8_t *p, uint32_t v)
{
    mos_put_le16(p, (uint16_t)v);
    mos_put_le16(p + 2, (uint16_t)(v >> 16));
}

static inline void mos_put_le64(uint8_t *p, uint64_t v)
{
    mos_put_le32(p, (uint32_t)v);
    mos_put_le32(p + 4, (uint32_t)(v >> 32));
}

static inline uint16_t mos_get_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t mos_get_le32(const uint8_t *p)
{
    return (uint32_t)mos_get_le16(p) | (uint32_t)mos_get_le16(p + 2) << 16;
}

static inline uint64_t mos_get_le64(const uint8_t *p)
{
    return (uint64_t)mos_get_le32(p) | (uint64_t)mos_get_le32(p + 4) << 32;
}

/* One protocol's framing. */
struct mos_frame_proto {
    uint32_t magic;
    uint16_t version;
    /* Whether a frame of this type may carry length payload bytes: false for a type the
     * protocol does not know and for a length outside that type's limits. */
    bool (*length_ok)(uint16_t type, uint32_t length);
};

struct mos_frame_hdr {
    uint16_t type;
    uint32_t length;
};

/* Write the header of a frame of proto into buf (MOS_FRAME_HDR_BYTES). */
void mos_frame_hdr_encode(const struct mos_frame_proto *proto, uint16_t type, uint32_t length,
                          uint8_t *buf);

/* Check and decode the header at the start of buf (len bytes available). The magic is
 * compared as far as buf goes, so garbage on a stream fails at its first byte rather than
 * after a wait for twelve. Returns 0 with *hdr set; MOS_E_PROTO for a wrong magic, an unknown
 * type or a length out of the type's limits; MOS_E_TRUNCATED when len < MOS_FRAME_HDR_BYTES
 * and what is there is a valid start; MOS_E_VERSION for another version. */
int mos_frame_hdr_decode(const struct mos_frame_proto *proto, const uint8_t *buf, size_t len,
                         struct mos_frame_hdr *hdr);

/* Like mos_frame_hdr_decode for a whole frame in buf, header and extra fixed bytes
 * (hdr_bytes >= MOS_FRAME_HDR_BYTES) and payload: MOS_E_TRUNCATED also when the payload is not
 * all there yet. On success *used = hdr_bytes + hdr->length. */
int mos_frame_decode(const struct mos_frame_proto *proto, const uint8_t *buf, size_t len,
                     size_t hdr_bytes, struct mos_frame_hdr *hdr, size_t *used);

#endif
