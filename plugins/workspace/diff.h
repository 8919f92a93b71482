/* diff: what an edit changes, as a unified diff (`diff -u`, three lines of context),
 * for the human asked to allow it and for the client showing it. Lines are compared by
 * Myers' algorithm after the common head and tail are set aside; past a bound on the
 * differences the middle is shown as removed and added whole. No state; any thread. */
#ifndef WS_DIFF_H
#define WS_DIFF_H

#include <stddef.h>

/* The diff of a into b, headed "--- a/NAME" / "+++ b/NAME"; "" when they are equal.
 * malloc'd, NULL when out of memory. */
char *diff_unified(const char *name, const char *a, size_t alen, const char *b, size_t blen);

#endif
