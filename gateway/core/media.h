/* media: the content of a prompt's file attachments, free of I/O. Base64, RFC 2397
 * data: URLs (base64 or percent-encoded), and what a MIME type and bytes are — an image
 * providers take, a PDF, text to inline, a directory listing, or something no model
 * here takes. Pure: no allocation but what a function returns; any thread. */
#ifndef AG_MEDIA_H
#define AG_MEDIA_H
#include <stddef.h>

enum media_kind {
	MEDIA_IMAGE, /* image/png, image/jpeg, image/gif, image/webp */
	MEDIA_PDF,   /* application/pdf */
	MEDIA_TEXT,  /* text/ types, JSON, XML, YAML, TOML, source code, SVG: inlined as text */
	MEDIA_DIR,   /* application/x-directory: a listing, inlined as text */
	MEDIA_OTHER, /* anything else (audio, archives, other images): refused */
};

/* The kind of a MIME type (parameters after ';' and case ignored). */
enum media_kind media_kind_of(const char *mime);

/* The image or PDF type the bytes start with ("image/png", ..., "application/pdf"), or
 * NULL when they start like none of them. */
const char *media_sniff(const unsigned char *p, size_t n);

/* 1 if p[0..n) is UTF-8 without NUL bytes or overlong/surrogate forms (text that can
 * be put in a JSON string as it is). */
int media_utf8_text(const unsigned char *p, size_t n);

/* Base64 (RFC 4648, '+' '/', padded) of p[0..n): malloc'd, NUL-terminated, length in
 * *outn when given; NULL for memory. */
char *media_b64_encode(const void *p, size_t n, size_t *outn);
/* The length base64 of n bytes takes (without the NUL). */
size_t media_b64_len(size_t n);
/* Decodes s[0..n) (padding optional, no whitespace): malloc'd bytes (a NUL follows the
 * *outn bytes), or NULL — why (wn bytes) names the offending character or length, or
 * memory. */
unsigned char *media_b64_decode(const char *s, size_t n, size_t *outn, char *why, size_t wn);
/* The number of bytes s[0..n) (valid base64) decodes to. */
size_t media_b64_decoded_len(const char *s, size_t n);

/* A data: URL, parsed. */
struct media_data {
	char mime[128];       /* its media type, lower case, without parameters ("" if none) */
	unsigned char *bytes; /* decoded (malloc'd; a NUL follows len bytes) */
	size_t len;
};

/* Parses url (NUL-terminated) as data:[<mediatype>][;base64],<data>, decoding at most
 * max bytes (0: no bound). 0, or -1 with why naming the problem (not a data: URL, no
 * comma, bad base64, a bad %-escape, over max). */
int media_data_parse(const char *url, size_t max, struct media_data *d, char *why, size_t wn);
void media_data_free(struct media_data *d);

/* The base64 payload of a data URL in the canonical form this module writes
 * ("data:MIME;base64,PAYLOAD"): *mime (mlen bytes, parameters cut) and *b64 point into
 * url. 0, or -1 when url is not of that form. */
int media_data_split(const char *url, const char **mime, size_t *mlen, const char **b64);

/* "data:MIME;base64,..." for bytes: malloc'd, or NULL for memory. */
char *media_data_url(const char *mime, const void *p, size_t n);

/* Decodes %XX escapes of s[0..n) into out (at least n + 1 bytes; a NUL follows): the
 * decoded length (%00 included: a path's caller checks for it), or -1 for a '%' not
 * followed by two hex digits. */
long media_pct_decode(const char *s, size_t n, char *out);

#endif
