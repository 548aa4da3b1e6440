/* Record-level reading and writing of the image stream (private). Layouts: image_format.h. */
#ifndef MOS_MIGRATE_IMAGE_H
#define MOS_MIGRATE_IMAGE_H

#include "image_format.h"
#include "img_io.h"
#include "mos/migrate.h"
#include "mos/procfs.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct mos_img_writer {
    struct mos_img_io *io;
    uint64_t records, pages, bytes;
};

/* Write one record whose payload is the concatenation of parts. 0 or the io's error. */
int mos_img_put(struct mos_img_writer *w, uint32_t magic, const struct iovec *parts, int nparts);

/* A record with its header and checksum computed ahead of writing, so one thread can hash
 * while another writes. The payload parts stay owned by the caller. */
struct mos_img_sealed {
    struct mos_rec_hdr hdr;
    uint64_t sum;
    struct iovec parts[2];
    int nparts;
};
void mos_img_seal(struct mos_img_sealed *s, uint32_t magic, const struct iovec *parts,
                  int nparts);
/* Write n sealed records, several per writev. 0 or the io's error. */
int mos_img_put_sealed(struct mos_img_writer *w, const struct mos_img_sealed *recs, int n);
/* The END record with the writer's totals. */
int mos_img_put_end(struct mos_img_writer *w);

struct mos_img_reader {
    struct mos_img_io *io;
    uint64_t records, pages, bytes;
    uint8_t *buf; /* payload of the last record read (unless the io mapped it) */
    size_t cap;
    int no_map;   /* the io cannot map: read into buf */
    /* A live stream's PRECOPY and PREBULK records (before IMAGE) are handed here, payload as
     * read (a PREBULK's pages are the hook's to receive); NULL: such a record is an error.
     * 0 or a status (logged there). */
    int (*stage)(void *arg, uint32_t magic, const uint8_t *payload, size_t len);
    void *stage_arg;
};

/* Read the next record: header checks (known magic, version, length within the limit of its
 * type), payload, checksum. *payload points into the reader's buffer until the next call.
 * Returns 0, MOS_E_TRUNCATED, MOS_E_IMAGE, MOS_E_VERSION or the io's -errno; logs once. */
int mos_img_get(struct mos_img_reader *r, uint32_t *magic, const uint8_t **payload,
                size_t *len);
void mos_img_reader_free(struct mos_img_reader *r);

/* Name of a record magic for messages ("PAGES"...), "?" for unknown ones. */
const char *mos_img_rec_name(uint32_t magic);

/* Parsed metadata (everything before the first PAGES record), validated field by field. */
struct mos_img_vma {
    struct mos_rec_vma v;
    char path[MOS_IMG_MAX_PATH + 1];
};
struct mos_img_fd {
    struct mos_rec_fd f;
    char path[MOS_IMG_MAX_PATH + 1];
    uint8_t *data; /* MOS_FD_PIPE: f.data_len bytes queued (malloc'ed), else NULL */
};
struct mos_img_thread {
    struct mos_rec_thread t;
    uint8_t *xstate;
    struct mos_rec_pending *pending;
};
struct mos_img_memfd {
    struct mos_rec_memfd o;
    char name[MOS_IMG_MAX_MEMFD_NAME + 1];
    int fd; /* the restorer's, once made (-1 until then; closed by mos_img_meta_free) */
};
struct mos_img_meta {
    struct mos_rec_image image;
    struct mos_rec_core core;
    uint8_t *xstate;
    struct mos_rec_mm mm;
    uint8_t *auxv;
    char exe[MOS_IMG_MAX_PATH + 1], cwd[MOS_IMG_MAX_PATH + 1];
    struct mos_img_vma *vmas;
    uint32_t nvmas;
    struct mos_rec_sigs sigs;
    struct mos_rec_pending *pending;
    struct mos_rec_rlim rlim;
    struct mos_img_thread *threads; /* the threads but the leader (image.nthreads - 1) */
    uint32_t nthreads;
    struct mos_img_fd *fds;
    uint32_t nfds;
    uint32_t nfds_alloc; /* entries of fds allocated (their data is freed even if unread) */
    struct mos_img_memfd *memfds;
    uint32_t nmemfds;
};

/* Read and validate IMAGE..MEMFDS. Returns 0 or a status (logged). */
int mos_img_meta_read(struct mos_img_reader *r, struct mos_img_meta *m);
void mos_img_meta_free(struct mos_img_meta *m);

/* "/memfd:NAME (deleted)", the name a memfd has in /proc. */
int mos_img_memfd_path_ok(const char *path);
/* The index in m->memfds of the object with inode ino, m->nmemfds if none. */
uint32_t mos_img_memfd_index(const struct mos_img_meta *m, uint64_t ino);
/* The inode a MOS_FD_MEMFD entry names (a dup: that of the entry it duplicates). */
uint64_t mos_img_fd_memfd_ino(const struct mos_img_meta *m, const struct mos_img_fd *f);
/* Read the MEMFD_PAGES records after MEMFDS, each checked (its object's, in order, within the
 * object and its data_pages), handing each run to put. 0, a status (logged) or put's. */
typedef int (*mos_img_memfd_put_fn)(void *arg, uint32_t index, uint64_t first, uint64_t npages,
                                    const uint8_t *data);
int mos_img_memfd_data_read(struct mos_img_reader *r, const struct mos_img_meta *m,
                            mos_img_memfd_put_fn put, void *arg);
/* Check a PAGES run against the VMAs: inside one VMA that may carry pages. 0 or MOS_E_IMAGE;
 * *vma_index is a hint in and the VMA's index out. */
int mos_img_pages_check(const struct mos_img_meta *m, uint64_t addr, uint64_t npages,
                        uint32_t *vma_index);
/* The same for a run of any length (bulk runs are not bounded by the PAGES record's limit). */
int mos_img_run_check(const struct mos_img_meta *m, uint64_t addr, uint64_t npages,
                      uint32_t *vma_index);
/* A BULK record's payload into *out: its length, plausible totals, and an io that has a page
 * channel to receive them from. 0 or MOS_E_IMAGE (logged). */
int mos_img_bulk_check(const struct mos_img_io *io, const uint8_t *p, size_t len,
                       struct mos_rec_bulk *out);

#endif
