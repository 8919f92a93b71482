/* id: prefixed identifiers that sort by creation time (ses_, msg_, prt_, turn_, evt_).
 * Layout: PREFIX "_" 12 hex digits of (unix ms * 4096 + counter) then 14 random base62
 * characters, so ids made later compare greater as strings. Pure; any thread. */
#ifndef AG_ID_H
#define AG_ID_H
#include <stddef.h>

#define ID_MAX 48 /* room for the longest prefix plus the 27 generated characters */

/* Writes a new id with the given prefix ("ses", "msg"...) into out (ID_MAX bytes).
 * Thread-safe: ids from all threads are strictly increasing in their time part. */
void id_new(char out[ID_MAX], const char *prefix);

/* 1 if s looks like an id with that prefix (prefix, '_', 26 id characters). */
int id_valid(const char *s, const char *prefix);

/* Writes into out an id with hi's prefix that sorts strictly between lo and hi, for a
 * record that must take its place just before hi in id order (a compaction turn run in
 * front of a queued turn). lo: the greatest id below hi that must stay below (NULL or
 * "" for none; an id of another prefix counts as none). The characters past the ones
 * that decide the order are random, so two calls with the same bounds differ. 0, or -1
 * when hi is not a valid id, lo is not below hi, or no id fits between them. */
int id_between(char out[ID_MAX], const char *lo, const char *hi);

#endif
