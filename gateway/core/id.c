#include "id.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static _Atomic uint64_t last_stamp;

static uint64_t next_stamp(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t now = ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000) * 4096;
	uint64_t prev = atomic_load(&last_stamp);
	uint64_t next;
	do {
		next = now > prev ? now : prev + 1;
	} while (!atomic_compare_exchange_weak(&last_stamp, &prev, next));
	return next;
}

static void random_tail(char *out, size_t n)
{
	static const char b62[] =
		"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	unsigned char r[32];
	if (getrandom(r, n, 0) != (ssize_t)n) {
		/* getrandom on Linux does not fail for small sizes once seeded; the
		 * stamp alone keeps ids unique within one process anyway. */
		uint64_t x = (uint64_t)clock() ^ (uint64_t)(uintptr_t)out;
		for (size_t i = 0; i < n; i++, x = x * 6364136223846793005ULL + 1)
			r[i] = (unsigned char)(x >> 33);
	}
	for (size_t i = 0; i < n; i++)
		out[i] = b62[r[i] % 62];
	out[n] = 0;
}

void id_new(char out[ID_MAX], const char *prefix)
{
	int n = snprintf(out, ID_MAX, "%s_%012llx", prefix,
			 (unsigned long long)(next_stamp() & 0xffffffffffffULL));
	if (n > 0 && n + 14 < ID_MAX)
		random_tail(out + n, 14);
}

int id_valid(const char *s, const char *prefix)
{
	size_t pl = strlen(prefix);
	if (!s || strncmp(s, prefix, pl) || s[pl] != '_')
		return 0;
	s += pl + 1;
	size_t n = strlen(s);
	if (n != 26)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		int ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
			 (c >= 'A' && c <= 'Z');
		if (!ok)
			return 0;
	}
	return 1;
}

/* ---- id_between: digit by digit, each position with its own alphabet ---- */

#define ID_STAMP 12 /* hex digits, then ID_TAIL base62 characters */
#define ID_TAIL 14
#define ID_BODY (ID_STAMP + ID_TAIL)

static const char hex_digits[] = "0123456789abcdef";
static const char b62_digits[] =
	"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static const char *alphabet(int pos, int *n)
{
	*n = pos < ID_STAMP ? 16 : 62;
	return pos < ID_STAMP ? hex_digits : b62_digits;
}

/* The body's digits as indexes into their alphabets; -1 for a bad character. */
static int digits_of(const char *body, int out[ID_BODY])
{
	for (int i = 0; i < ID_BODY; i++) {
		int n;
		const char *a = alphabet(i, &n), *c = body[i] ? memchr(a, body[i], (size_t)n) : NULL;
		if (!c)
			return -1;
		out[i] = (int)(c - a);
	}
	return 0;
}

static unsigned rnd(void)
{
	unsigned r;
	if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
		r = (unsigned)clock() * 2654435761u;
	return r;
}

/* d[from..] random; d[at] = a digit in [min, max] (inclusive). */
static void fill(int d[ID_BODY], int at, int min, int max)
{
	d[at] = min + (int)(rnd() % (unsigned)(max - min + 1));
	for (int i = at + 1; i < ID_BODY; i++) {
		int n;
		alphabet(i, &n);
		d[i] = (int)(rnd() % (unsigned)n);
	}
}

/* A digit string strictly between l and h (l may be all -1: below everything). */
static int between(const int l[ID_BODY], const int h[ID_BODY], int d[ID_BODY])
{
	int i = 0;
	while (i < ID_BODY && l[i] == h[i])
		d[i] = h[i], i++;
	if (i == ID_BODY || l[i] > h[i])
		return -1; /* not below hi */
	if (h[i] - l[i] >= 2) {
		fill(d, i, l[i] + 1, h[i] - 1);
		return 0;
	}
	/* adjacent digits at i: keep lo's and go above it further on, or hi's and below */
	for (int j = i + 1; l[i] >= 0 && j < ID_BODY; j++) {
		int n;
		alphabet(j, &n);
		if (l[j] < n - 1) {
			memcpy(d, l, sizeof(int) * (size_t)j);
			fill(d, j, l[j] + 1, n - 1);
			return 0;
		}
	}
	for (int j = i + 1; j < ID_BODY; j++) {
		if (h[j] > 0) {
			memcpy(d, h, sizeof(int) * (size_t)j);
			fill(d, j, 0, h[j] - 1);
			return 0;
		}
	}
	return -1;
}

int id_between(char out[ID_MAX], const char *lo, const char *hi)
{
	const char *us = hi ? strrchr(hi, '_') : NULL;
	if (!us || us == hi || strlen(us + 1) != ID_BODY)
		return -1;
	size_t plen = (size_t)(us - hi);
	int l[ID_BODY], h[ID_BODY], d[ID_BODY];
	if (digits_of(us + 1, h))
		return -1;
	int lo_ok = lo && strlen(lo) == plen + 1 + ID_BODY && !strncmp(lo, hi, plen + 1) &&
		    digits_of(lo + plen + 1, l) == 0;
	if (!lo_ok)
		for (int i = 0; i < ID_BODY; i++)
			l[i] = -1;
	if (plen + 1 + ID_BODY >= ID_MAX || between(l, h, d))
		return -1;
	memcpy(out, hi, plen + 1);
	for (int i = 0; i < ID_BODY; i++) {
		int n;
		out[plen + 1 + i] = alphabet(i, &n)[d[i]];
	}
	out[plen + 1 + ID_BODY] = 0;
	return 0;
}
