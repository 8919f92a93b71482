/* kv: a small key-value store per owner (a plugin's own state) in the engine's store.
 * A value is durable before engine_kv_set returns 0, as a prompt is; reads see every
 * write made so far, also one still waiting for its commit. */
#include "engine_int.h"

#include <stdlib.h>
#include <string.h>

/* owner and key: 1 to ENGINE_KV_KEY_MAX bytes. */
static int check_name(const char *what, const char *s, struct err *e)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0) {
		err_set(e, ERR_INVALID, "the kv %s is empty", what);
		return -1;
	}
	if (n > ENGINE_KV_KEY_MAX) {
		err_set(e, ERR_LIMIT, "the kv %s is %zu bytes, over the limit of %d bytes", what, n,
			ENGINE_KV_KEY_MAX);
		return -1;
	}
	return 0;
}

static int check_key(const char *owner, const char *key, struct err *e)
{
	return check_name("owner", owner, e) || check_name("key", key, e) ? -1 : 0;
}

struct copy {
	char *value;
	size_t len;
};

static int copy_value(void *arg, const char *key, const void *value, size_t len)
{
	struct copy *c = arg;
	if ((c->value = malloc(len + 1))) {
		if (len)
			memcpy(c->value, value, len);
		c->value[len] = 0;
		c->len = len;
	}
	return 1;
}

/* 0 when owner has key (its value to c, when given), else -1 with e naming why. */
static int lookup(struct engine *E, const char *owner, const char *key, struct copy *c,
		  struct err *e)
{
	struct copy scratch = {0};
	int rc = store_kv_get(E->S, owner, key, copy_value, c ? c : &scratch);
	free(scratch.value);
	if (rc < 0) {
		err_set(e, ERR_UNAVAILABLE, "the store cannot be read now (%.300s)",
			store_failure(E->S) ? store_failure(E->S) : "see the log");
		return -1;
	}
	if (rc == 0) {
		err_set(e, ERR_NOTFOUND, "%s has no kv key \"%s\"", owner, key);
		return -1;
	}
	if (c && !c->value) {
		err_set(e, ERR_INTERNAL, "out of memory reading kv key \"%s\"", key);
		return -1;
	}
	return 0;
}

int engine_kv_get(struct engine *E, const char *owner, const char *key, char **value_out,
		  size_t *len_out, struct err *e)
{
	struct copy c = {0};
	if (check_key(owner, key, e) || lookup(E, owner, key, &c, e))
		return -1;
	*value_out = c.value;
	if (len_out)
		*len_out = c.len;
	return 0;
}

/* Writes through the batch log and commits before answering (engine_commit). */
static int kv_write(struct engine *E, const char *owner, const char *key, const void *value,
		    size_t len, int del, struct err *e)
{
	char what[320];
	snprintf(what, sizeof(what), "the %s of kv key \"%.256s\"", del ? "deletion" : "value",
		 key);
	if (engine_store_ok(E, what, e))
		return -1;
	uint64_t mark = store_mark(E->S);
	if (del ? store_kv_delete(E->S, owner, key) : store_kv_put(E->S, owner, key, value, len)) {
		err_set(e, ERR_INTERNAL, "out of memory saving %s", what);
		return -1;
	}
	return engine_commit(E, mark, what, e) ? -1 : 0;
}

int engine_kv_set(struct engine *E, const char *owner, const char *key, const void *value,
		  size_t len, struct err *e)
{
	if (check_key(owner, key, e))
		return -1;
	if (!value && len) {
		err_set(e, ERR_INVALID, "kv key \"%s\": no value for %zu bytes", key, len);
		return -1;
	}
	if (len > ENGINE_KV_VALUE_MAX) {
		err_set(e, ERR_LIMIT, "the value of kv key \"%s\" is %zu bytes, over the limit of "
			"%d bytes", key, len, ENGINE_KV_VALUE_MAX);
		return -1;
	}
	return kv_write(E, owner, key, value ? value : "", len, 0, e);
}

int engine_kv_delete(struct engine *E, const char *owner, const char *key, struct err *e)
{
	if (check_key(owner, key, e) || lookup(E, owner, key, NULL, e))
		return -1;
	return kv_write(E, owner, key, NULL, 0, 1, e);
}

int engine_kv_list(struct engine *E, const char *owner, const char *prefix, engine_kv_fn fn,
		   void *arg)
{
	if (check_name("owner", owner, NULL) || !fn)
		return -1;
	return store_kv_list(E->S, owner, prefix ? prefix : "", fn, arg);
}
