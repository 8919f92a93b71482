/* The key-value store per owner (engine_kv_*) on a real engine and store: values set,
 * read, replaced, listed by prefix and deleted, each owner's apart; bytes kept as they
 * are; durable across a restart; the limits named when passed. A failing disk is in
 * test_faults. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define OWNER "plugin:kv"

/* Sets a text value, which is on disk when the call returns. */
static void set(struct h *h, const char *owner, const char *key, const char *value)
{
	struct err e = {0};
	if (engine_kv_set(h->E, owner, key, value, strlen(value), &e))
		fail_msg("kv set %s: %s", key, e.msg);
	char *stored = h_kv_value(h, owner, key);
	assert_string_equal(stored, value);
	free(stored);
}

/* owner's value of key, asserted present (caller frees). */
static char *get(struct h *h, const char *owner, const char *key)
{
	struct err e = {0};
	char *v = NULL;
	size_t len = 0;
	if (engine_kv_get(h->E, owner, key, &v, &len, &e))
		fail_msg("kv get %s: %s", key, e.msg);
	assert_int_equal(strlen(v), len);
	return v;
}

static void absent(struct h *h, const char *owner, const char *key)
{
	struct err e = {0};
	char *v = NULL;
	assert_int_equal(engine_kv_get(h->E, owner, key, &v, NULL, &e), -1);
	assert_int_equal(e.code, ERR_NOTFOUND);
	assert_non_null(strstr(e.msg, key));
	assert_null(v);
}

/* owner's keys under prefix, as "k=v,k=v" in key order. */
static void listed(struct h *h, const char *prefix, const char *want)
{
	char *got = h_kv_list(h, OWNER, prefix);
	assert_string_equal(got, want);
	free(got);
}

static void values_are_set_replaced_listed_and_deleted_per_owner(void **state)
{
	struct h h;
	h_dir(&h, NULL);
	h_start(&h, 1);
	absent(&h, OWNER, "todo/1");
	set(&h, OWNER, "todo/2", "second");
	set(&h, OWNER, "todo/1", "first");
	set(&h, OWNER, "other", "x");
	set(&h, "plugin:else", "todo/1", "not mine");
	char *v = get(&h, OWNER, "todo/1");
	assert_string_equal(v, "first");
	free(v);
	set(&h, OWNER, "todo/1", "first, again");
	v = get(&h, OWNER, "todo/1");
	assert_string_equal(v, "first, again");
	free(v);
	listed(&h, "todo/", "todo/1=first, again,todo/2=second");
	listed(&h, NULL, "other=x,todo/1=first, again,todo/2=second");
	struct err e = {0};
	assert_int_equal(engine_kv_delete(h.E, OWNER, "todo/1", &e), 0);
	absent(&h, OWNER, "todo/1");
	assert_int_equal(engine_kv_delete(h.E, OWNER, "todo/1", &e), -1);
	assert_int_equal(e.code, ERR_NOTFOUND);
	listed(&h, "todo/", "todo/2=second");
	v = get(&h, "plugin:else", "todo/1"); /* another owner's key of that name stays */
	assert_string_equal(v, "not mine");
	free(v);
	h_stop(&h);
}

static void values_are_bytes_and_survive_a_restart(void **state)
{
	struct h h;
	h_dir(&h, NULL);
	h_start(&h, 1);
	static const char bin[] = {'a', 0, 'b', (char)0xff, 0};
	struct err e = {0};
	assert_int_equal(engine_kv_set(h.E, OWNER, "bin", bin, sizeof(bin), &e), 0);
	assert_int_equal(engine_kv_set(h.E, OWNER, "empty", NULL, 0, &e), 0);
	set(&h, OWNER, "plain", "kept"); /* on disk when it returned */
	h_stop(&h);
	h_start(&h, 1);
	char *v = NULL;
	size_t len = 0;
	assert_int_equal(engine_kv_get(h.E, OWNER, "bin", &v, &len, &e), 0);
	assert_int_equal(len, sizeof(bin));
	assert_memory_equal(v, bin, sizeof(bin));
	free(v);
	assert_int_equal(engine_kv_get(h.E, OWNER, "empty", &v, &len, &e), 0);
	assert_int_equal(len, 0);
	assert_string_equal(v, "");
	free(v);
	v = get(&h, OWNER, "plain");
	assert_string_equal(v, "kept");
	free(v);
	h_stop(&h);
}

static void refused(struct h *h, const char *owner, const char *key, size_t len,
		    enum err_code code, const char *says)
{
	static char big[ENGINE_KV_VALUE_MAX + 2];
	struct err e = {0};
	assert_int_equal(engine_kv_set(h->E, owner, key, big, len, &e), -1);
	assert_int_equal(e.code, code);
	if (!strstr(e.msg, says))
		fail_msg("\"%s\" does not say \"%s\"", e.msg, says);
}

static void the_limits_are_named_when_passed(void **state)
{
	struct h h;
	h_dir(&h, NULL);
	h_start(&h, 1);
	char key[ENGINE_KV_KEY_MAX + 2];
	memset(key, 'k', sizeof(key) - 1);
	key[sizeof(key) - 1] = 0; /* 257 bytes */
	refused(&h, OWNER, key, 1, ERR_LIMIT, "over the limit of 256 bytes");
	refused(&h, key, "k", 1, ERR_LIMIT, "the kv owner is 257 bytes");
	refused(&h, OWNER, "k", ENGINE_KV_VALUE_MAX + 1, ERR_LIMIT, "over the limit of 65536 bytes");
	refused(&h, OWNER, "", 1, ERR_INVALID, "the kv key is empty");
	refused(&h, NULL, "k", 1, ERR_INVALID, "the kv owner is empty");
	key[ENGINE_KV_KEY_MAX] = 0; /* at the limits: taken */
	static char big[ENGINE_KV_VALUE_MAX];
	struct err e = {0};
	assert_int_equal(engine_kv_set(h.E, OWNER, key, big, sizeof(big), &e), 0);
	char *v = NULL;
	size_t len = 0;
	assert_int_equal(engine_kv_get(h.E, OWNER, key, &v, &len, &e), 0);
	assert_int_equal(len, sizeof(big));
	free(v);
	h_stop(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(values_are_set_replaced_listed_and_deleted_per_owner),
		cmocka_unit_test(values_are_bytes_and_survive_a_restart),
		cmocka_unit_test(the_limits_are_named_when_passed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
