#include "media.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- kinds ---- */

/* mime's type/subtype, lower case, without parameters or spaces, into buf. */
static void mime_base(const char *mime, char *buf, size_t n)
{
	size_t k = 0;
	while (mime && (*mime == ' ' || *mime == '\t'))
		mime++;
	for (; mime && *mime && *mime != ';' && *mime != ' ' && k + 1 < n; mime++)
		buf[k++] = (char)(*mime >= 'A' && *mime <= 'Z' ? *mime + 32 : *mime);
	buf[k] = 0;
}

static int ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), t = strlen(tail);
	return n > t && !strcmp(s + n - t, tail);
}

enum media_kind media_kind_of(const char *mime)
{
	static const char *const images[] = {"image/png", "image/jpeg", "image/jpg", "image/gif",
					     "image/webp"};
	/* application/ types that are text a model reads as it is */
	static const char *const texts[] = {
		"application/json", "application/xml", "application/javascript",
		"application/ecmascript", "application/typescript", "application/x-typescript",
		"application/x-javascript", "application/yaml", "application/x-yaml",
		"application/toml", "application/x-toml", "application/sql", "application/graphql",
		"application/x-sh", "application/x-shellscript", "application/x-python",
		"application/x-ruby", "application/x-perl", "application/x-php",
		"application/x-httpd-php", "application/x-tex", "application/x-latex",
		"application/csv", "application/x-ndjson", "application/ndjson",
		"application/jsonl", "application/x-empty", "inode/x-empty", "image/svg+xml",
	};
	char b[128];
	mime_base(mime, b, sizeof(b));
	for (size_t i = 0; i < sizeof(images) / sizeof(images[0]); i++)
		if (!strcmp(b, images[i]))
			return MEDIA_IMAGE;
	if (!strcmp(b, "application/pdf"))
		return MEDIA_PDF;
	if (!strcmp(b, "application/x-directory") || !strcmp(b, "inode/directory"))
		return MEDIA_DIR;
	if (!strncmp(b, "text/", 5) || ends_with(b, "+json") || ends_with(b, "+xml") ||
	    ends_with(b, "+yaml"))
		return MEDIA_TEXT;
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		if (!strcmp(b, texts[i]))
			return MEDIA_TEXT;
	return MEDIA_OTHER;
}

const char *media_sniff(const unsigned char *p, size_t n)
{
	if (n >= 8 && !memcmp(p, "\x89PNG\r\n\x1a\n", 8))
		return "image/png";
	if (n >= 3 && !memcmp(p, "\xff\xd8\xff", 3))
		return "image/jpeg";
	if (n >= 6 && (!memcmp(p, "GIF87a", 6) || !memcmp(p, "GIF89a", 6)))
		return "image/gif";
	if (n >= 12 && !memcmp(p, "RIFF", 4) && !memcmp(p + 8, "WEBP", 4))
		return "image/webp";
	if (n >= 5 && !memcmp(p, "%PDF-", 5))
		return "application/pdf";
	return NULL;
}

int media_utf8_text(const unsigned char *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned c = p[i];
		if (c == 0)
			return 0;
		if (c < 0x80) {
			i++;
			continue;
		}
		int len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
		if (!len || c > 0xf4 || i + (size_t)len > n)
			return 0;
		for (int k = 1; k < len; k++)
			if ((p[i + (size_t)k] & 0xc0) != 0x80)
				return 0;
		unsigned c1 = p[i + 1];
		if ((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 >= 0xa0) || /* overlong, surrogate */
		    (c == 0xf0 && c1 < 0x90) || (c == 0xf4 && c1 >= 0x90))    /* overlong, > U+10FFFF */
			return 0;
		i += (size_t)len;
	}
	return 1;
}

/* ---- base64 ---- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t media_b64_len(size_t n)
{
	return (n + 2) / 3 * 4;
}

char *media_b64_encode(const void *src, size_t n, size_t *outn)
{
	const unsigned char *p = src;
	if (n > (SIZE_MAX - 1) / 4 * 3 - 2)
		return NULL;
	size_t len = media_b64_len(n);
	char *out = malloc(len + 1), *o = out;
	if (!out)
		return NULL;
	size_t i = 0;
	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		*o++ = b64[v >> 18];
		*o++ = b64[(v >> 12) & 63];
		*o++ = b64[(v >> 6) & 63];
		*o++ = b64[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
		*o++ = b64[v >> 18];
		*o++ = b64[(v >> 12) & 63];
		*o++ = i + 1 < n ? b64[(v >> 6) & 63] : '=';
		*o++ = '=';
	}
	*o = 0;
	if (outn)
		*outn = len;
	return out;
}

static int b64_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* The number of characters before the padding, or -1 when the padding is malformed. */
static long b64_body(const char *s, size_t n)
{
	size_t pad = 0;
	while (pad < n && pad < 2 && s[n - 1 - pad] == '=')
		pad++;
	if (pad && n % 4)
		return -1;
	return (long)(n - pad);
}

size_t media_b64_decoded_len(const char *s, size_t n)
{
	long body = b64_body(s, n);
	if (body < 0)
		return 0;
	return (size_t)body / 4 * 3 + ((size_t)body % 4 ? (size_t)body % 4 - 1 : 0);
}

unsigned char *media_b64_decode(const char *s, size_t n, size_t *outn, char *why, size_t wn)
{
	long body = b64_body(s, n);
	if (body < 0 || body % 4 == 1) {
		snprintf(why, wn, "base64 of a length no encoding has (%zu characters)", n);
		return NULL;
	}
	size_t len = media_b64_decoded_len(s, n);
	unsigned char *out = malloc(len + 1);
	if (!out) {
		snprintf(why, wn, "out of memory");
		return NULL;
	}
	uint32_t acc = 0;
	int bits = 0;
	size_t k = 0;
	for (long i = 0; i < body; i++) {
		int v = b64_val((unsigned char)s[i]);
		if (v < 0) {
			unsigned char c = (unsigned char)s[i];
			if (c >= 0x20 && c < 0x7f)
				snprintf(why, wn, "a character base64 does not have at offset %ld "
					 "('%c')", i, c);
			else
				snprintf(why, wn, "a character base64 does not have at offset %ld "
					 "(byte 0x%02x)", i, c);
			free(out);
			return NULL;
		}
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[k++] = (unsigned char)(acc >> bits);
		}
	}
	out[k] = 0;
	*outn = k;
	return out;
}

/* ---- percent-encoding ---- */

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

long media_pct_decode(const char *s, size_t n, char *out)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '%') {
			out[k++] = s[i];
			continue;
		}
		int hi = i + 2 < n ? hexval(s[i + 1]) : -1;
		int lo = hi >= 0 ? hexval(s[i + 2]) : -1;
		if (hi < 0 || lo < 0)
			return -1;
		out[k++] = (char)(hi << 4 | lo);
		i += 2;
	}
	out[k] = 0;
	return (long)k;
}

/* ---- data: URLs ---- */

void media_data_free(struct media_data *d)
{
	free(d->bytes);
	d->bytes = NULL;
	d->len = 0;
}

/* The header's last parameter is ";base64" (any case). */
static int header_base64(const char *h, size_t n)
{
	return n >= 7 && !strncasecmp(h + n - 7, ";base64", 7);
}

int media_data_parse(const char *url, size_t max, struct media_data *d, char *why, size_t wn)
{
	memset(d, 0, sizeof(*d));
	if (strncasecmp(url, "data:", 5)) {
		snprintf(why, wn, "not a data: URL");
		return -1;
	}
	const char *h = url + 5, *comma = strchr(h, ',');
	if (!comma) {
		snprintf(why, wn, "a data: URL without the ',' before its data");
		return -1;
	}
	size_t hn = (size_t)(comma - h);
	mime_base(h, d->mime, sizeof(d->mime));
	char *cut = strchr(d->mime, ',');
	if (cut)
		*cut = 0;
	const char *data = comma + 1;
	size_t dn = strlen(data);
	char *plain = malloc(dn + 1);
	if (!plain) {
		snprintf(why, wn, "out of memory");
		return -1;
	}
	long pn = media_pct_decode(data, dn, plain);
	if (pn < 0) {
		snprintf(why, wn, "a '%%' not followed by two hex digits in the data: URL");
		free(plain);
		return -1;
	}
	if (!header_base64(h, hn)) {
		if (max && (size_t)pn > max) {
			snprintf(why, wn, "its data is %ld bytes, over %zu", pn, max);
			free(plain);
			return -1;
		}
		d->bytes = (unsigned char *)plain;
		d->len = (size_t)pn;
		return 0;
	}
	size_t want = media_b64_decoded_len(plain, (size_t)pn);
	if (max && want > max) {
		snprintf(why, wn, "its data is %zu bytes, over %zu", want, max);
		free(plain);
		return -1;
	}
	char inner[160];
	d->bytes = media_b64_decode(plain, (size_t)pn, &d->len, inner, sizeof(inner));
	free(plain);
	if (!d->bytes) {
		snprintf(why, wn, "malformed base64 in the data: URL: %s", inner);
		return -1;
	}
	return 0;
}

int media_data_split(const char *url, const char **mime, size_t *mlen, const char **b64out)
{
	if (!url || strncmp(url, "data:", 5))
		return -1;
	const char *h = url + 5, *comma = strchr(h, ',');
	if (!comma || !header_base64(h, (size_t)(comma - h)))
		return -1;
	*mime = h;
	*mlen = strcspn(h, ";,");
	*b64out = comma + 1;
	return 0;
}

char *media_data_url(const char *mime, const void *p, size_t n)
{
	size_t bn;
	char *enc = media_b64_encode(p, n, &bn);
	if (!enc)
		return NULL;
	size_t ml = strlen(mime);
	char *out = malloc(5 + ml + 8 + bn + 1);
	if (out) {
		memcpy(out, "data:", 5);
		memcpy(out + 5, mime, ml);
		memcpy(out + 5 + ml, ";base64,", 8);
		memcpy(out + 13 + ml, enc, bn + 1);
	}
	free(enc);
	return out;
}
