#include "batchz.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static const unsigned char magic1[8] = {'A', 'G', 'Z', '1', 0xff, 0xff, 0xff, 0xff};

/* Dictionary 1: the shapes of the common events, most frequent last (closest to the
 * data, cheapest to refer to). Never change it: make a dictionary 2 with a new magic. */
static const char dict1[] =
	"{\"type\":\"session.created\",\"properties\":{\"sessionID\":\"ses_\",\"info\":{\"id\":"
	"\"ses_\",\"slug\":\"ses_\",\"projectID\":\"global\",\"directory\":\"/\",\"parentID\":"
	"\"ses_\",\"rootID\":\"ses_\",\"depth\":0,\"path\":\"ses_\",\"title\":\"New session - "
	"ses_\",\"version\":\"0.1.0\",\"time\":{\"created\":17,\"updated\":17}}}}"
	"{\"type\":\"session.updated\",\"properties\":{\"sessionID\":\"ses_\",\"info\":{\"id\":"
	"{\"type\":\"session.idle\",\"properties\":{\"sessionID\":\"ses_\"},\"seq\":"
	"{\"type\":\"session.status\",\"properties\":{\"sessionID\":\"ses_\",\"status\":"
	"{\"type\":\"idle\"}}{\"type\":\"busy\"}}"
	"{\"type\":\"message.updated\",\"properties\":{\"sessionID\":\"ses_\",\"info\":{\"id\":"
	"\"msg_\",\"sessionID\":\"ses_\",\"role\":\"user\",\"time\":{\"created\":17},\"turnID\":"
	"\"turn_\",\"agent\":\"build\",\"source\":\"http\",\"model\":{\"providerID\":\"\","
	"\"modelID\":\"\"}}},\"role\":\"assistant\",\"parentID\":\"msg_\",\"modelID\":\""
	"\",\"providerID\":\"\",\"mode\":\"build\",\"cost\":0,\"tokens\":{\"input\":0,\"output\""
	":0,\"reasoning\":0,\"cache\":{\"read\":0,\"write\":0}},\"finish\":\"stop\",\"completed\":"
	"{\"type\":\"message.part.updated\",\"properties\":{\"sessionID\":\"ses_\",\"part\":{"
	"\"id\":\"prt_\",\"sessionID\":\"ses_\",\"messageID\":\"msg_\",\"type\":\"step-finish\","
	"\"reason\":\"tool-calls\",\"type\":\"step-start\"},\"type\":\"reasoning\",\"type\":"
	"\"tool\",\"callID\":\"call_\",\"tool\":\"\",\"state\":{\"status\":\"pending\",\"input\":"
	"{},\"raw\":\"\"}\"status\":\"running\",\"status\":\"completed\",\"output\":\"\","
	"\"title\":\"\",\"metadata\":{},\"time\":{\"start\":17,\"end\":17}}"
	"\"type\":\"text\",\"text\":\"\"},\"time\":17},\"seq\":"
	"{\"type\":\"message.part.delta\",\"properties\":{\"sessionID\":\"ses_\",\"messageID\":"
	"\"msg_\",\"partID\":\"prt_\",\"field\":\"text\",\"delta\":\"\"},\"seq\":1,"
	"\"sessionID\":\"ses_\",\"rootID\":\"ses_\",\"depth\":0,\"turnID\":\"turn_\"}";

/* No batch unpacks to more: EVLOG_BATCH_BYTES and one event of ENGINE_EMIT_MAX past it,
 * with EVLOG_BATCH_MAX heads, are well below it, and a damaged one cannot make us
 * allocate without end. */
#define BATCHZ_MAX ((size_t)256 << 20)

struct batchz {
	z_stream d, i;
	int d_ok, i_ok;
	unsigned char *buf; /* what unpack returns */
	size_t cap;
	unsigned char *obuf; /* the batch being packed */
	size_t ocap, olen;
};

struct batchz *batchz_create(void)
{
	return calloc(1, sizeof(struct batchz));
}

void batchz_destroy(struct batchz *Z)
{
	if (!Z)
		return;
	if (Z->d_ok)
		deflateEnd(&Z->d);
	if (Z->i_ok)
		inflateEnd(&Z->i);
	free(Z->buf);
	free(Z->obuf);
	free(Z);
}

/* Grows *buf (of *cap bytes) to hold need, doubling from 4 KiB; none past BATCHZ_MAX. */
static int reserve(unsigned char **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return 0;
	if (need > BATCHZ_MAX)
		return -1;
	size_t c = *cap ? *cap : 4096;
	while (c < need)
		c *= 2;
	unsigned char *b = realloc(*buf, c);
	if (!b)
		return -1;
	*buf = b;
	*cap = c;
	return 0;
}

int batchz_begin(struct batchz *Z)
{
	/* level 1 (a higher level gains a few bytes an event for twice the time), a 32 KiB
	 * window: records come in seq order, so a session's previous one is further back
	 * than when batches were sorted by session */
	if (!Z->d_ok && deflateInit2(&Z->d, 1, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return -1;
	Z->d_ok = 1;
	if (deflateReset(&Z->d) != Z_OK ||
	    deflateSetDictionary(&Z->d, (const Bytef *)dict1, sizeof(dict1) - 1) != Z_OK)
		return -1;
	if (reserve(&Z->obuf, &Z->ocap, sizeof(magic1)))
		return -1;
	memcpy(Z->obuf, magic1, sizeof(magic1));
	Z->olen = sizeof(magic1);
	return 0;
}

/* Runs deflate over what is given with flush, growing the output as it fills. */
static int pump(struct batchz *Z, const void *in, size_t n, int flush)
{
	Z->d.next_in = (Bytef *)(uintptr_t)in;
	Z->d.avail_in = (uInt)n;
	for (;;) {
		if (reserve(&Z->obuf, &Z->ocap, Z->olen + 1024))
			return -1;
		Z->d.next_out = Z->obuf + Z->olen;
		Z->d.avail_out = (uInt)(Z->ocap - Z->olen);
		int rc = deflate(&Z->d, flush);
		Z->olen = Z->ocap - Z->d.avail_out;
		if (rc == Z_STREAM_END || (flush == Z_NO_FLUSH && !Z->d.avail_in && Z->d.avail_out))
			return 0;
		if (rc != Z_OK && rc != Z_BUF_ERROR)
			return -1;
	}
}

int batchz_feed(struct batchz *Z, const void *in, size_t n)
{
	return n > UINT32_MAX ? -1 : pump(Z, in, n, Z_NO_FLUSH);
}

int batchz_finish(struct batchz *Z, const void **out, size_t *out_n)
{
	if (pump(Z, NULL, 0, Z_FINISH))
		return -1;
	*out = Z->obuf;
	*out_n = Z->olen;
	return 0;
}

/* Inflates src into Z->buf, growing it as needed. */
static int inflate_all(struct batchz *Z, const unsigned char *src, size_t n, size_t *out_n)
{
	if (!Z->i_ok && inflateInit2(&Z->i, -15) != Z_OK)
		return -1;
	Z->i_ok = 1;
	if (inflateReset(&Z->i) != Z_OK || inflateSetDictionary(&Z->i, (const Bytef *)dict1,
								  sizeof(dict1) - 1) != Z_OK)
		return -1;
	Z->i.next_in = (Bytef *)(uintptr_t)src;
	Z->i.avail_in = (uInt)n;
	size_t have = 0;
	for (;;) {
		if (reserve(&Z->buf, &Z->cap, have + 65536))
			return -1;
		Z->i.next_out = Z->buf + have;
		Z->i.avail_out = (uInt)(Z->cap - have);
		int rc = inflate(&Z->i, Z_NO_FLUSH);
		have = Z->cap - Z->i.avail_out;
		if (rc == Z_STREAM_END) {
			*out_n = have;
			return 0;
		}
		if (rc != Z_OK && rc != Z_BUF_ERROR)
			return -1;
		if (Z->i.avail_in == 0 && Z->i.avail_out) /* truncated */
			return -1;
	}
}

int batchz_unpack(struct batchz *Z, const void *in, size_t n, const void **out,
		  size_t *out_n)
{
	const unsigned char *p = in;
	if (n < sizeof(magic1) || memcmp(p + 4, magic1 + 4, 4)) {
		*out = in; /* written before packing */
		*out_n = n;
		return 0;
	}
	if (memcmp(p, magic1, sizeof(magic1)) || n - sizeof(magic1) > UINT32_MAX ||
	    inflate_all(Z, p + sizeof(magic1), n - sizeof(magic1), out_n))
		return -1;
	*out = Z->buf;
	return 0;
}
