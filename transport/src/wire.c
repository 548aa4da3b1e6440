#include "wire.h"

#include "mos/status.h"

#include <string.h>

void mos_wire_hdr_encode(const struct mos_wire_hdr *hdr, uint8_t *buf)
{
    mos_put_be32(buf, hdr->magic);
    buf[4] = (uint8_t)(hdr->version >> 8), buf[5] = (uint8_t)hdr->version;
    buf[6] = (uint8_t)(hdr->type >> 8), buf[7] = (uint8_t)hdr->type;
    mos_put_be32(buf + 8, hdr->length);
    mos_put_be32(buf + 12, hdr->id);
}

void mos_wire_hdr_make(uint16_t type, uint32_t length, uint32_t id, uint8_t *buf)
{
    struct mos_wire_hdr h = {MOS_WIRE_MAGIC, MOS_WIRE_VERSION, type, length, id};

    mos_wire_hdr_encode(&h, buf);
}

uint32_t mos_wire_payload_limit(uint16_t type)
{
    switch (type) {
    case MOS_WIRE_PAGE_RUN:
        return MOS_WIRE_MAX_BULK;
    case MOS_WIRE_CONTROL:
    case MOS_WIRE_REPLY:
        return MOS_WIRE_MAX_CONTROL;
    case MOS_WIRE_HELLO:
        return MOS_WIRE_HELLO_BYTES;
    case MOS_WIRE_CHALLENGE:
        return MOS_WIRE_NONCE_BYTES;
    case MOS_WIRE_PROOF:
        return MOS_WIRE_NONCE_BYTES + MOS_MAC_BYTES;
    case MOS_WIRE_ATTACH:
        return MOS_WIRE_TOKEN_BYTES + MOS_MAC_BYTES;
    case MOS_WIRE_BULK_END:
        return MOS_WIRE_BULK_END_BYTES;
    default: /* CLOSE, SETUP: a reason code and a short text */
        return 128;
    }
}

int mos_wire_hdr_decode(const uint8_t *buf, size_t len, struct mos_wire_hdr *hdr)
{
    if (len < MOS_WIRE_HDR_BYTES)
        return MOS_E_TRUNCATED;
    hdr->magic = mos_get_be32(buf);
    hdr->version = (uint16_t)(buf[4] << 8 | buf[5]);
    hdr->type = (uint16_t)(buf[6] << 8 | buf[7]);
    hdr->length = mos_get_be32(buf + 8);
    hdr->id = mos_get_be32(buf + 12);
    if (hdr->magic != MOS_WIRE_MAGIC)
        return MOS_E_PROTO;
    if (hdr->version != MOS_WIRE_VERSION)
        return MOS_E_VERSION;
    if (hdr->type < 1 || hdr->type > MOS_WIRE_TYPE_MAX)
        return MOS_E_PROTO;
    if (hdr->length > mos_wire_payload_limit(hdr->type))
        return MOS_E_PROTO;
    return 0;
}

void mos_wire_runs_encode(const struct mos_page_run *runs, size_t n, uint8_t *buf)
{
    mos_put_be32(buf, (uint32_t)n);
    mos_put_be32(buf + 4, 0);
    for (size_t i = 0; i < n; i++) {
        uint8_t *p = buf + MOS_WIRE_RUN_HDR_BYTES + i * MOS_WIRE_RUN_BYTES;
        mos_put_be64(p, runs[i].addr);
        mos_put_be32(p + 8, (uint32_t)runs[i].npages);
        mos_put_be32(p + 12, 0);
    }
}

int mos_wire_runs_table_decode(const uint8_t *buf, size_t len, size_t payload_len,
                               struct mos_page_run *runs, size_t max_runs, size_t *n)
{
    uint64_t pages = 0;
    size_t count, table;

    if (len < MOS_WIRE_RUN_HDR_BYTES || payload_len < len)
        return MOS_E_PROTO;
    count = mos_get_be32(buf);
    if (count == 0 || count > max_runs || count > MOS_WIRE_MAX_RUNS)
        return MOS_E_PROTO;
    table = mos_wire_runs_table_bytes(count);
    if (table > len)
        return MOS_E_PROTO;
    for (size_t i = 0; i < count; i++) {
        const uint8_t *p = buf + MOS_WIRE_RUN_HDR_BYTES + i * MOS_WIRE_RUN_BYTES;
        uint64_t addr = mos_get_be64(p), np = mos_get_be32(p + 8);

        /* Reject what a consumer could be fooled by: empty runs, unaligned addresses, runs
         * that wrap around the address space. */
        if (np == 0 || addr % MOS_TP_PAGE_SIZE != 0 ||
            addr + np * MOS_TP_PAGE_SIZE < addr)
            return MOS_E_PROTO;
        runs[i].addr = addr;
        runs[i].npages = np;
        pages += np;
    }
    if (pages * MOS_TP_PAGE_SIZE != payload_len - table)
        return MOS_E_PROTO;
    *n = count;
    return 0;
}

int mos_wire_runs_decode(const uint8_t *buf, size_t len, struct mos_page_run *runs,
                         size_t max_runs, size_t *n, const uint8_t **data)
{
    int rc = mos_wire_runs_table_decode(buf, len, len, runs, max_runs, n);

    if (rc == 0)
        *data = buf + mos_wire_runs_table_bytes(*n);
    return rc;
}

void mos_wire_hello_encode(const struct mos_wire_hello *h, uint8_t *buf)
{
    mos_put_be32(buf, h->caps);
    mos_put_be32(buf + 4, h->backend);
    mos_put_be32(buf + 8, h->slot_bytes);
    mos_put_be32(buf + 12, h->slot_count);
    mos_put_be32(buf + 16, h->n_qps);
    buf[20] = (uint8_t)(h->tcp_port >> 8), buf[21] = (uint8_t)h->tcp_port;
    buf[22] = (uint8_t)(h->cm_port >> 8), buf[23] = (uint8_t)h->cm_port;
    memcpy(buf + 24, h->token, MOS_WIRE_TOKEN_BYTES);
    memset(buf + 24 + MOS_WIRE_TOKEN_BYTES, 0, sizeof(h->reason));
    memcpy(buf + 24 + MOS_WIRE_TOKEN_BYTES, h->reason, strnlen(h->reason, sizeof(h->reason) - 1));
}

int mos_wire_hello_decode(const uint8_t *buf, size_t len, struct mos_wire_hello *h)
{
    if (len != MOS_WIRE_HELLO_BYTES)
        return MOS_E_PROTO;
    h->caps = mos_get_be32(buf);
    h->backend = mos_get_be32(buf + 4);
    h->slot_bytes = mos_get_be32(buf + 8);
    h->slot_count = mos_get_be32(buf + 12);
    h->n_qps = mos_get_be32(buf + 16);
    h->tcp_port = (uint16_t)(buf[20] << 8 | buf[21]);
    h->cm_port = (uint16_t)(buf[22] << 8 | buf[23]);
    memcpy(h->token, buf + 24, MOS_WIRE_TOKEN_BYTES);
    memcpy(h->reason, buf + 24 + MOS_WIRE_TOKEN_BYTES, sizeof(h->reason));
    h->reason[sizeof(h->reason) - 1] = '\0';
    for (char *p = h->reason; *p; p++) /* it is printed in logs */
        if (*p < 0x20 || *p > 0x7e)
            *p = '?';
    if (h->backend > MOS_TP_VERBS || h->slot_bytes < 2 * MOS_TP_PAGE_SIZE ||
        h->slot_bytes > MOS_WIRE_MAX_BULK || h->slot_count < 2 || h->slot_count > 1024 ||
        h->n_qps < 1 || h->n_qps > 16)
        return MOS_E_PROTO;
    return 0;
}
