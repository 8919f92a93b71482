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
