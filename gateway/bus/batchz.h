/* batchz: how a batch of stored events is packed: raw deflate (zlib) primed with a
 * fixed dictionary of the events' common JSON, behind an 8-byte magic naming the
 * format and its dictionary. Events are mostly the same keys and ids over and over, so
 * a batch of five streamed deltas packs to about a tenth, and a full one further. A
 * dictionary, once used on disk, never changes: a new one gets a new magic. The magic's
 * bytes 4..7 are 0xff; in a batch written before packing they are the high half of its
 * first seq (little-endian, positive), never all 0xff — so those batches still read.
 * Loop thread only (the streams are reused). */
#ifndef AG_BATCHZ_H
#define AG_BATCHZ_H
#include <stddef.h>

struct batchz;

struct batchz *batchz_create(void);
void batchz_destroy(struct batchz *Z);
/* Packs a batch as its records come: begin, feed each, finish. *out (valid until the
 * next begin) and *out_n. 0, or -1 (out of memory). Unpacking between them is fine. */
int batchz_begin(struct batchz *Z);
int batchz_feed(struct batchz *Z, const void *in, size_t n);
int batchz_finish(struct batchz *Z, const void **out, size_t *out_n);
/* Unpacks a stored batch: a packed one into *out (valid until the next call); one
 * written before packing is returned as it is. 0, or -1 for a damaged or unknown one. */
int batchz_unpack(struct batchz *Z, const void *in, size_t n, const void **out,
		  size_t *out_n);

#endif
