/* The seeded mutator of the fuzz smoke tests (test_fuzz_smoke, test_fuzz_door): the same
 * inputs on every run, so a failure reproduces. Header-only; one rng per test binary. */
#ifndef AG_FUZZ_MUTATE_H
#define AG_FUZZ_MUTATE_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static uint64_t mutate_rng = 0x9e3779b97f4a7c15ULL;

static uint32_t mutate_next(void)
{
	mutate_rng ^= mutate_rng << 13;
	mutate_rng ^= mutate_rng >> 7;
	mutate_rng ^= mutate_rng << 17;
	return (uint32_t)mutate_rng;
}

/* One mutation of b[0, n) (room for cap): flip a bit, insert or overwrite one of the
 * interesting bytes, delete a byte, or duplicate a span. Returns the new length. */
static size_t mutate(uint8_t *b, size_t n, size_t cap, const uint8_t *interesting, size_t ninteresting)
{
	size_t at = n ? mutate_next() % n : 0;
	switch (mutate_next() % 5) {
	case 0:
		if (n)
			b[at] ^= (uint8_t)(1u << (mutate_next() % 8));
		break;
	case 1:
		if (n < cap) {
			memmove(b + at + 1, b + at, n - at);
			b[at] = interesting[mutate_next() % ninteresting];
			n++;
		}
		break;
	case 2:
		if (n > 1) {
			memmove(b + at, b + at + 1, n - at - 1);
			n--;
		}
		break;
	case 3: {
		size_t len = n - at < 16 ? n - at : 16;
		if (n + len <= cap) {
			memmove(b + at + len, b + at, n - at);
			n += len;
		}
		break;
	}
	default:
		if (n)
			b[at] = interesting[mutate_next() % ninteresting];
	}
	return n;
}

#endif
