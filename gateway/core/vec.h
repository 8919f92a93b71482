/* vec: room for one more element in a growing array (rows collected from the store).
 * Pure; the array belongs to its caller. */
#ifndef AG_VEC_H
#define AG_VEC_H
#include <stdlib.h>

/* Returns array (grown, doubling *cap, when element n does not fit) or NULL when out of
 * memory, in which case array is untouched. elem is the size of one element. */
static inline void *vec_reserve(void *array, int *cap, int n, size_t elem)
{
	if (n < *cap)
		return array;
	int ncap = *cap ? *cap * 2 : 16;
	void *nv = realloc(array, (size_t)ncap * elem);
	if (nv)
		*cap = ncap;
	return nv;
}

#endif
