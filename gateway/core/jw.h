/* jw: an append-only JSON writer for the hot path (event encoding), where building a
 * cJSON tree per token would cost more than the rest of the pipeline. Strings are
 * escaped and invalid UTF-8 is replaced with U+FFFD so every output parses.
 * Pure; a writer belongs to one thread at a time. */
#ifndef AG_JW_H
#define AG_JW_H
#include <stddef.h>
#include <stdint.h>

struct jw {
	char *buf;
	size_t len, cap;
	int oom;          /* set when an allocation failed; output is then unusable */
	int depth;
	uint64_t nonfirst; /* bit per depth: a value was already written at this level */
	int after_key;
};

void jw_init(struct jw *w);
void jw_reset(struct jw *w); /* empties, keeps the buffer */
void jw_free(struct jw *w);
/* Hands the NUL-terminated text to the caller (free() it); the writer is reset. NULL on OOM. */
char *jw_take(struct jw *w, size_t *len);

void jw_obj(struct jw *w);
void jw_obj_end(struct jw *w);
void jw_arr(struct jw *w);
void jw_arr_end(struct jw *w);
void jw_key(struct jw *w, const char *k);
void jw_str(struct jw *w, const char *s); /* NULL writes null */
void jw_strn(struct jw *w, const char *s, size_t n);
void jw_int(struct jw *w, int64_t v);
void jw_double(struct jw *w, double v);
void jw_bool(struct jw *w, int v);
void jw_null(struct jw *w);
/* Inserts already-valid JSON text as one value (NULL or "" writes null). */
void jw_raw(struct jw *w, const char *json);
void jw_rawn(struct jw *w, const char *json, size_t n);

/* key + value shorthands */
void jw_kstr(struct jw *w, const char *k, const char *s);
void jw_kint(struct jw *w, const char *k, int64_t v);
void jw_kbool(struct jw *w, const char *k, int v);
void jw_kraw(struct jw *w, const char *k, const char *json);

/* Writes a string value whose body was already escaped with jw_escape. */
void jw_str_escaped(struct jw *w, const char *esc, size_t n);
/* Appends raw bytes with no separator (jw as a plain string builder). */
void jw_append(struct jw *w, const char *s, size_t n);
/* Appends the escaped body of a JSON string (no quotes) to w. */
void jw_escape(struct jw *w, const char *s, size_t n);

/* Length of the valid UTF-8 sequence at s (n bytes available, n > 0), 0 if invalid
 * (an ASCII byte is not a sequence here: 0 too). Pure. */
size_t jw_utf8_len(const char *s, size_t n);

#endif
