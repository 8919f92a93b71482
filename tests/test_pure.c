/* Pure modules: ids sort by creation, the JSON writer always produces valid JSON, the
 * turn-queue rules (FIFO, one running, dedupe, reject, interrupt, limit), and the
 * config's limits with a named error for every bad value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>
#include <libwebsockets.h>

#include "catalog.h"
#include "command.h"
#include "config.h"
#include "id.h"
#include "jw.h"
#include "loop.h"
#include "timerq.h"
#include "permrule.h"
#include "turnq.h"

static void ids_sort_by_creation_and_validate(void **state)
{
	char prev[ID_MAX] = "", cur[ID_MAX];
	for (int i = 0; i < 10000; i++) {
		id_new(cur, "msg");
		assert_true(id_valid(cur, "msg"));
		assert_true(strcmp(prev, cur) < 0);
		memcpy(prev, cur, sizeof(cur));
	}
	assert_false(id_valid(cur, "ses"));
	assert_false(id_valid("msg_x", "msg"));
	assert_false(id_valid("msg_../../etc/passwd000000000", "msg"));
}

/* An id that sorts between two others: what a compaction put in front of a queued turn
 * takes, again and again in front of the same turn, and refusals where none fits. */
static void id_between_sorts_strictly_between(void **state)
{
	char lo[ID_MAX], hi[ID_MAX], mid[ID_MAX];
	id_new(lo, "turn");
	id_new(hi, "turn");
	for (int i = 0; i < 200; i++) { /* each one in front of hi, after the one before */
		assert_int_equal(id_between(mid, lo, hi), 0);
		assert_true(id_valid(mid, "turn"));
		assert_true(strcmp(lo, mid) < 0 && strcmp(mid, hi) < 0);
		memcpy(lo, mid, sizeof(lo));
	}
	assert_int_equal(id_between(mid, NULL, hi), 0); /* nothing below: anything under hi */
	assert_true(strcmp(mid, hi) < 0 && id_valid(mid, "turn"));
	assert_int_equal(id_between(mid, "msg_000000000000AAAAAAAAAAAAAA", hi), 0);
	assert_true(strcmp(mid, hi) < 0);
	/* adjacent ids at their last digit: the digits after the first difference decide */
	assert_int_equal(id_between(mid, "turn_00000000000000000000000000",
				    "turn_00000000000000000000000002"), 0);
	assert_string_equal(mid, "turn_00000000000000000000000001");
	assert_int_equal(id_between(mid, "turn_0000000000000000000000000z",
				    "turn_00000000000000000000000010"), -1);
	assert_int_equal(id_between(mid, "turn_0000000000000000000000000y",
				    "turn_00000000000000000000000010"), 0);
	assert_string_equal(mid, "turn_0000000000000000000000000z");
	assert_int_equal(id_between(mid, NULL, "turn_00000000000000000000000000"), -1);
	assert_int_equal(id_between(mid, NULL, "turn_00000000000000000000000001"), 0);
	assert_string_equal(mid, "turn_00000000000000000000000000");
	assert_int_equal(id_between(mid, hi, lo), -1); /* lo above hi */
	assert_int_equal(id_between(mid, lo, lo), -1);
	assert_int_equal(id_between(mid, NULL, "turn_short"), -1);
	assert_int_equal(id_between(mid, NULL, "turn_0000000000000000000000000!"), -1);
}

static void jw_escapes_and_replaces_bad_utf8(void **state)
{
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_kstr(&w, "a", "q\"b\\s\n\t\x01 \xc3\xa9 \xff\xfe end");
	jw_key(&w, "arr");
	jw_arr(&w);
	jw_int(&w, -5);
	jw_bool(&w, 1);
	jw_null(&w);
	jw_raw(&w, "{\"x\":1}");
	jw_arr_end(&w);
	jw_obj_end(&w);
	char *s = jw_take(&w, NULL);
	cJSON *j = cJSON_Parse(s);
	assert_non_null(j);
	const char *a = cJSON_GetObjectItem(j, "a")->valuestring;
	assert_string_equal(a, "q\"b\\s\n\t\x01 \xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd end");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "arr")), 4);
	cJSON_Delete(j);
	free(s);
}

struct item {
	struct turnq_item qi;
	int n;
};

static void turnq_runs_one_at_a_time_in_fifo_order(void **state)
{
	struct turnq q = {0};
	struct item it[5];
	for (int i = 0; i < 5; i++) {
		memset(&it[i], 0, sizeof(it[i]));
		it[i].n = i;
		assert_int_equal(turnq_decide(&q, TURN_POLICY_QUEUE, NULL, NULL), TURNQ_ENQUEUE);
		turnq_push(&q, &it[i].qi);
	}
	for (int i = 0; i < 5; i++) {
		struct turnq_item *r = turnq_start_next(&q);
		assert_ptr_equal(r, &it[i].qi);
		assert_null(turnq_start_next(&q)); /* one runs at a time */
		turnq_finish(&q);
	}
	assert_false(turnq_busy(&q));
}

/* A compaction goes first in line; a running turn goes back to the front behind it. */
static void turnq_puts_in_front_and_requeues_the_running(void **state)
{
	struct turnq q = {0};
	struct item it[4];
	memset(it, 0, sizeof(it));
	turnq_push(&q, &it[0].qi);
	turnq_push(&q, &it[1].qi);
	assert_ptr_equal(turnq_start_next(&q), &it[0].qi);
	turnq_requeue(&q); /* it[0] waits again, first */
	assert_null(q.running);
	turnq_push_front(&q, &it[2].qi);
	assert_int_equal(q.waiting, 3);
	struct turnq_item *order[] = {&it[2].qi, &it[0].qi, &it[1].qi};
	for (int i = 0; i < 3; i++) {
		assert_ptr_equal(turnq_start_next(&q), order[i]);
		turnq_finish(&q);
	}
	turnq_push_front(&q, &it[3].qi); /* into an empty line */
	assert_ptr_equal(q.tail, &it[3].qi);
	assert_ptr_equal(turnq_start_next(&q), &it[3].qi);
	turnq_finish(&q);
	assert_false(turnq_busy(&q));
}

static void turnq_dedupe_reject_interrupt_and_limit(void **state)
{
	struct turnq q = {0};
	struct item a = {.qi.dedupe_key = "wake"}, b = {0};
	struct turnq_item *match;
	turnq_push(&q, &a.qi);
	assert_int_equal(turnq_decide(&q, TURN_POLICY_QUEUE, "wake", &match), TURNQ_COALESCE);
	assert_ptr_equal(match, &a.qi);
	turnq_start_next(&q);
	/* a running turn with the key still coalesces a repeated wake */
	assert_int_equal(turnq_decide(&q, TURN_POLICY_QUEUE, "wake", &match), TURNQ_COALESCE);
	assert_int_equal(turnq_decide(&q, TURN_POLICY_QUEUE, "other", NULL), TURNQ_ENQUEUE);
	assert_int_equal(turnq_decide(&q, TURN_POLICY_REJECT, NULL, NULL), TURNQ_BUSY);
	assert_int_equal(turnq_decide(&q, TURN_POLICY_INTERRUPT, NULL, NULL), TURNQ_INTERRUPT);
	turnq_push(&q, &b.qi);
	assert_int_equal(turnq_remove(&q, &b.qi), 0);
	assert_int_equal(turnq_remove(&q, &b.qi), -1);
	turnq_finish(&q);
	assert_int_equal(turnq_decide(&q, TURN_POLICY_REJECT, NULL, NULL), TURNQ_ENQUEUE);
	struct item *many = calloc(TURNQ_MAX, sizeof(*many));
	for (int i = 0; i < TURNQ_MAX; i++)
		turnq_push(&q, &many[i].qi);
	assert_int_equal(turnq_decide(&q, TURN_POLICY_QUEUE, NULL, NULL), TURNQ_FULL);
	free(many);
}

static void turn_policy_names_parse(void **state)
{
	enum turn_policy p;
	assert_int_equal(turnq_policy_parse("interrupt", &p), 0);
	assert_int_equal(p, TURN_POLICY_INTERRUPT);
	assert_int_equal(turnq_policy_parse(NULL, &p), 0);
	assert_int_equal(p, TURN_POLICY_QUEUE);
	assert_int_equal(turnq_policy_parse("later", &p), -1);
}

/* Loads json as a config file; 0 or -1 with e filled. */
static int load_json(struct config *c, const char *json, struct err *e)
{
	char path[] = "/tmp/agentgate-config-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, json, strlen(json)), (ssize_t)strlen(json));
	close(fd);
	int rc = config_load(c, path, e);
	unlink(path);
	return rc;
}

static void config_limits_default_and_reject_bad_values_by_name(void **state)
{
	struct config c;
	struct err e = {0};
	assert_int_equal(config_load(&c, NULL, &e), 0);
	assert_int_equal(c.max_output_bytes, 4 * 1024 * 1024);
	assert_int_equal(c.max_attempt_ms, 600000);
	config_free(&c);
	assert_int_equal(load_json(&c, "{\"limits\":{\"max_output_bytes\":65536,"
				   "\"max_attempt_ms\":250}}", &e), 0);
	assert_int_equal(c.max_output_bytes, 65536);
	assert_int_equal(c.max_attempt_ms, 250);
	config_free(&c);
	static const struct {
		const char *json, *named;
	} bad[] = {
		{"{\"limits\":[]}", "\"limits\" must be an object"},
		{"{\"limits\":{\"max_output_bytes\":0}}", "\"limits.max_output_bytes\" must be an integer from 1 to"},
		{"{\"limits\":{\"max_output_bytes\":-1}}", "\"limits.max_output_bytes\""},
		{"{\"limits\":{\"max_output_bytes\":\"4MB\"}}", "\"limits.max_output_bytes\""},
		{"{\"limits\":{\"max_output_bytes\":1e300}}", "\"limits.max_output_bytes\""},
		{"{\"limits\":{\"max_output_bytes\":1.5}}", "\"limits.max_output_bytes\""},
		{"{\"limits\":{\"max_attempt_ms\":1.5}}", "\"limits.max_attempt_ms\" must be an integer from 1 to"},
		{"{\"limits\":{\"max_attempt_ms\":null}}", "\"limits.max_attempt_ms\""},
		{"{\"limits\":{\"max_attempt_ms\":1e19}}", "\"limits.max_attempt_ms\""},
		/* past 2^63 the conversion to int64 would be undefined */
		{"{\"retry\":{\"cap_ms\":1e300}}", "\"cap_ms\" must be a non-negative number"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&e, 0, sizeof(e));
		assert_int_equal(load_json(&c, bad[i].json, &e), -1);
		if (!strstr(e.msg, bad[i].named))
			fail_msg("%s: \"%s\" does not name %s", bad[i].json, e.msg, bad[i].named);
		config_free(&c);
	}
}

static void permission_wildcards_match_like_opencode(void **state)
{
	static const struct {
		const char *pattern, *s;
		int match;
	} cases[] = {
		{"*", "", 1}, {"*", "anything at all/with/slashes", 1},
		{"git *", "git status", 1}, {"git *", "git", 1}, /* the tail is optional */
		{"git *", "gitk", 0}, {"git *", "git log src/a.c", 1},
		{"rm *", "rm -rf /", 1}, {"rm *", "echo rm -rf /", 0},
		{"src/*", "src/a/b/c.c", 1}, {"src/*", "lib/src/a.c", 0},
		{"*.c", "src/main.c", 1}, {"*.c", "src/main.h", 0},
		{"?.txt", "a.txt", 1}, {"?.txt", "ab.txt", 0},
		{"[ab]*", "apple", 1}, {"[ab]*", "cherry", 0}, {"[!ab]*", "cherry", 1},
		{"[^ab]*", "apple", 0}, {"[a-c]x", "bx", 1}, {"[a-c]x", "dx", 0},
		{"[]]", "]", 1}, {"[unclosed", "[unclosed", 1}, {"a\\*b", "a*b", 1},
		{"a\\*b", "axb", 0}, {"", "", 1}, {"", "x", 0}, {"abc", "abc", 1},
		{"abc", "abcd", 0}, {"*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0},
		{"mcp_*", "mcp_fetch", 1}, {"trailing\\", "trailing\\", 1},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (perm_match(cases[i].pattern, cases[i].s) != cases[i].match)
			fail_msg("\"%s\" vs \"%s\": expected %d", cases[i].pattern, cases[i].s,
				 cases[i].match);
	assert_int_equal(perm_match(NULL, "x"), 0);
	assert_int_equal(perm_match("x", NULL), 0);
}

static struct perm_rules rules_of(const char *json, const char *origin)
{
	struct perm_rules r = {0};
	struct err e = {0};
	cJSON *j = cJSON_Parse(json);
	snprintf(r.origin, sizeof(r.origin), "%s", origin);
	if (perm_rules_parse(&r, j, "/home/u", "test", &e))
		fail_msg("%s: %s", json, e.msg);
	cJSON_Delete(j);
	return r;
}

static enum perm_action eval(const struct perm_rules *const *sets, int n, const char *perm,
			     const char *patterns_json, struct perm_hit *hit)
{
	cJSON *pats = patterns_json ? cJSON_Parse(patterns_json) : NULL;
	enum perm_action a = perm_eval(sets, n, perm, pats, hit);
	cJSON_Delete(pats);
	return a;
}

static void permission_rules_last_match_wins_agent_over_global(void **state)
{
	struct perm_rules def = rules_of("{\"*\":\"allow\",\"edit\":\"ask\",\"bash\":\"ask\"}",
					 "default");
	struct perm_rules cfg = rules_of("{\"bash\":{\"*\":\"ask\",\"git *\":\"allow\","
					 "\"rm *\":\"deny\"},\"edit\":{\"~/secret/*\":\"deny\"},"
					 "\"timeout_ms\":5000}", "config");
	struct perm_rules agent = rules_of("{\"bash\":{\"git push *\":\"deny\"},\"read\":\"deny\"}",
					   "agent build");
	const struct perm_rules *all[] = {&def, &cfg, &agent};
	struct perm_hit hit;
	char buf[256];
	assert_int_equal(cfg.n, 4); /* timeout_ms is not a rule */
	assert_int_equal(eval(all, 3, "bash", "[\"git status\"]", &hit), PERM_ALLOW);
	assert_string_equal(hit.set->origin, "config");
	assert_int_equal(eval(all, 3, "bash", "[\"git push origin\"]", &hit), PERM_DENY);
	perm_hit_describe(&hit, buf, sizeof(buf));
	assert_string_equal(buf, "\"bash\": {\"git push *\": \"deny\"} (agent build)");
	assert_int_equal(eval(all, 2, "bash", "[\"git push origin\"]", &hit), PERM_ALLOW);
	assert_int_equal(eval(all, 3, "bash", "[\"make\"]", &hit), PERM_ASK);
	/* one denied subject denies the ask; one asking subject asks */
	assert_int_equal(eval(all, 3, "bash", "[\"git status\",\"rm -rf x\"]", &hit), PERM_DENY);
	assert_int_equal(eval(all, 3, "bash", "[\"git status\",\"make\"]", &hit), PERM_ASK);
	assert_string_equal(hit.rule->pattern, "*");
	/* ~ is the home directory; "edit" rules cover write, patch and multiedit */
	assert_int_equal(eval(all, 3, "write", "[\"/home/u/secret/k\"]", &hit), PERM_DENY);
	assert_int_equal(eval(all, 3, "edit", "[\"/home/u/notes\"]", &hit), PERM_ASK);
	assert_int_equal(eval(all, 3, "read", "[\"a.c\"]", &hit), PERM_DENY);
	assert_int_equal(eval(all, 2, "read", "[\"a.c\"]", &hit), PERM_ALLOW);
	/* no patterns is the subject "*"; an unknown permission takes the "*" rule */
	assert_int_equal(eval(all, 3, "bash", NULL, &hit), PERM_ASK);
	assert_int_equal(eval(all, 3, "srv_fetch", "[]", &hit), PERM_ALLOW);
	/* nothing matching: ask, no rule */
	assert_int_equal(eval(all + 2, 1, "glob", "[\"x\"]", &hit), PERM_ASK);
	assert_null(hit.rule);
	perm_hit_describe(&hit, buf, sizeof(buf));
	assert_string_equal(buf, "no rule");
	/* a lone action is every permission */
	struct perm_rules one = rules_of("\"deny\"", "config");
	const struct perm_rules *sets[] = {&def, &one};
	assert_int_equal(eval(sets, 2, "read", "[\"x\"]", &hit), PERM_DENY);
	perm_rules_free(&one);
	perm_rules_free(&def);
	perm_rules_free(&cfg);
	perm_rules_free(&agent);
}

static void permission_config_errors_name_the_key(void **state)
{
	static const struct {
		const char *json, *named;
	} bad[] = {
		{"[1]", "test must be an object"},
		{"\"maybe\"", "test must be \"allow\""},
		{"{\"bash\":\"yes\"}", "\"bash\" must be \"allow\", \"ask\" or \"deny\""},
		{"{\"bash\":{\"git *\":\"ok\"}}", "\"bash\": {\"git *\": ...}"},
		{"{\"bash\":{\"git *\":1}}", "\"bash\": {\"git *\": ...}"},
		{"{\"edit\":true}", "\"edit\" must be"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct perm_rules r = {0};
		struct err e = {0};
		cJSON *j = cJSON_Parse(bad[i].json);
		assert_int_equal(perm_rules_parse(&r, j, NULL, "test", &e), -1);
		if (!strstr(e.msg, bad[i].named))
			fail_msg("%s: \"%s\" does not name %s", bad[i].json, e.msg, bad[i].named);
		cJSON_Delete(j);
		perm_rules_free(&r);
	}
	enum perm_action a;
	assert_int_equal(perm_action_parse("ask", &a), 0);
	assert_int_equal(a, PERM_ASK);
	assert_int_equal(perm_action_parse(NULL, &a), -1);
	assert_string_equal(perm_action_name(PERM_DENY), "deny");
}

/* The catalog: config entries in OpenCode's shape, ids only, the built-in demo, models
 * only named by the default or an agent; bad entries named by their path. */
static void catalog_reads_the_config_and_names_bad_entries(void **state)
{
	struct config c;
	struct err e = {0};
	assert_int_equal(load_json(&c, "{\"model\": \"openai/gpt-x\", \"agent\": {\"a\": "
		"{\"model\": \"anthropic/claude-z\"}}, \"providers\": {\"scripted\": {\"models\": "
		"{\"tiny\": {\"limit\": {\"context\": 2000, \"output\": 500}, \"modalities\": "
		"{\"input\": [\"text\"]}}}}, \"openai\": {\"models\": {\"gpt-4o\": {\"name\": \"GPT-4o\","
		" \"limit\": {\"context\": 128000}, \"modalities\": {\"input\": [\"text\", \"image\"]},"
		" \"cost\": {\"input\": 2.5, \"output\": 10}}}}, \"anthropic\": {\"models\": [\"c1\"]}}}",
		&e), 0);
	struct catalog *K = catalog_load(&c, &e);
	assert_non_null(K);
	const struct model_info *t = catalog_lookup(K, "scripted/tiny");
	assert_non_null(t);
	assert_int_equal(t->context, 2000);
	assert_int_equal(t->output, 500);
	assert_false(t->attachment);
	const struct model_info *d = catalog_lookup(K, "scripted/demo");
	assert_non_null(d);
	assert_true(d->input_image && d->context > 0);
	const struct model_info *g = catalog_find(K, "openai", "gpt-4o");
	assert_string_equal(g->name, "GPT-4o");
	assert_true(g->input_image && g->attachment && g->configured);
	assert_true(g->cost_output == 10.0);
	assert_non_null(catalog_lookup(K, "anthropic/c1"));
	const struct model_info *x = catalog_lookup(K, "openai/gpt-x");
	assert_non_null(x);
	assert_false(x->configured);
	assert_int_equal(x->context, 0);
	assert_non_null(catalog_lookup(K, "anthropic/claude-z"));
	assert_null(catalog_lookup(K, "openai/none"));
	assert_null(catalog_lookup(K, "nonsense"));
	assert_int_equal(catalog_count(K), 6);
	catalog_free(K);
	config_free(&c);

	static const char *const bad[][2] = {
		{"{\"providers\": {\"openai\": {\"models\": {\"m\": {\"limit\": {\"context\": -1}}}}}}",
		 "providers.openai.models.m.limit.context"},
		{"{\"providers\": {\"openai\": {\"models\": {\"m\": {\"attachment\": 1}}}}}",
		 "providers.openai.models.m.attachment"},
		{"{\"providers\": {\"openai\": {\"models\": {\"m\": {\"modalities\": "
		 "{\"input\": [\"smell\"]}}}}}}", "\"smell\""},
		{"{\"providers\": {\"anthropic\": {\"models\": [\"a\", \"a\"]}}}", "twice"},
		{"{\"providers\": {\"anthropic\": {\"models\": 3}}}", "providers.anthropic.models"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&e, 0, sizeof(e));
		assert_int_equal(load_json(&c, bad[i][0], &e), 0);
		assert_null(catalog_load(&c, &e));
		assert_non_null(strstr(e.msg, bad[i][1]));
		config_free(&c);
	}
}

static void command_templates_expand_like_opencode(void **state)
{
	static const char *const cases[][3] = {
		/* template, arguments, expected */
		{"Say hello to $1 and $2", "Ann \"Bob Smith\" and 'friends'",
		 "Say hello to Ann and Bob Smith and friends"},
		{"$2 then $1", "a b c", "b c then a"},
		{"x $3 y", "a", "x  y"},
		{"Echo: $ARGUMENTS", "  a  b ", "Echo:   a  b"},
		{"Just this", "more", "Just this\n\nmore"},
		{"Just this", "   ", "Just this"},
		{"$1 | $ARGUMENTS", "one two", "one two | one two"},
		{"$1/$2", "[Image 12] x", "[Image 12]/x"},
		{"$1,$2", "\"ab c", "ab,c"},
		{"cost $5 now", "", "cost  now"},
		{"$ $x $ARGUMENTSX", "q", "$ $x qX"},
		{"  padded $1  ", "w", "padded w"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = command_expand(cases[i][0], cases[i][1]);
		assert_non_null(got);
		if (strcmp(got, cases[i][2]))
			fail_msg("expand(\"%s\", \"%s\") = \"%s\", want \"%s\"", cases[i][0],
				 cases[i][1], got, cases[i][2]);
		free(got);
	}
}

static void commands_load_checks_each_entry(void **state)
{
	struct agents A;
	struct commands K;
	struct err e = {0};
	assert_int_equal(agents_load(&A, NULL, &e), 0);
	cJSON *ok = cJSON_Parse("{\"r\": {\"template\": \"Review $1 then $ARGUMENTS $1\", "
				"\"agent\": \"general\", \"subtask\": false}}");
	assert_int_equal(commands_load(&K, ok, &A, &e), 0);
	assert_int_equal(K.n, 1);
	assert_int_equal(K.v[0].subtask, 0);
	struct jw w;
	jw_init(&w);
	commands_write_json(&K, &w);
	assert_string_equal(w.buf, "[{\"name\":\"r\",\"template\":\"Review $1 then $ARGUMENTS $1\","
			    "\"agent\":\"general\",\"subtask\":false,\"source\":\"command\","
			    "\"hints\":[\"$1\",\"$ARGUMENTS\"]}]");
	jw_free(&w);
	commands_free(&K);
	cJSON_Delete(ok);
	static const char *const bad[][2] = {
		{"{\"x\": \"just text\"}", "command.x must be an object"},
		{"{\"x\": {\"template\": \"t\", \"description\": 3}}", "command.x.description"},
		{"{\"\": {\"template\": \"t\"}}", "name is empty"},
		{"[]", "\"command\" must be an object"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cJSON *j = cJSON_Parse(bad[i][0]);
		memset(&e, 0, sizeof(e));
		assert_int_equal(commands_load(&K, j, &A, &e), -1);
		if (!strstr(e.msg, bad[i][1]))
			fail_msg("%s: \"%s\" not in \"%s\"", bad[i][0], bad[i][1], e.msg);
		commands_free(&K);
		cJSON_Delete(j);
	}
	agents_free(&A);
}

/* The timer queue pops in deadline order whatever was inserted, re-armed or removed. */
static void timerq_pops_in_deadline_order(void **state)
{
	enum { N = 2000 };
	static struct tq_node nodes[N];
	struct timerq q = {0};
	srand(7);
	for (int round = 0; round < 5; round++) {
		for (int i = 0; i < N; i++)
			tq_insert(&q, &nodes[i], rand() % 1000);
		for (int i = 0; i < N; i += 3)
			tq_remove(&q, &nodes[i]);
		for (int i = 1; i < N; i += 7)
			tq_insert(&q, &nodes[i], rand() % 1000); /* re-arm: moves it */
		int64_t last = -1;
		int popped = 0, queued = 0;
		for (int i = 0; i < N; i++)
			queued += nodes[i].queued;
		int expect = 0;
		for (int i = 0; i < N; i++)
			expect += i % 3 != 0 || i % 7 == 1;
		assert_int_equal(queued, expect);
		struct tq_node *n;
		while ((n = tq_first(&q))) {
			assert_true(n->due >= last);
			last = n->due;
			tq_remove(&q, n);
			assert_false(n->queued);
			popped++;
		}
		assert_int_equal(popped, queued);
	}
}

static int fired;
static void on_timer(struct timer *t)
{
	(void)t;
	fired++;
}

/* The loop sleeps until a timer is due: a few wake-ups for a timer 1.5 ms away, not the
 * hundreds of zero-timeout polls that rounding its wait down to whole ms would make. */
static void loop_sleeps_until_its_timer_without_spinning(void **state)
{
	struct loop_config cfg = {.port = -1};
	struct loop *L = loop_create(&cfg);
	assert_non_null(L);
	struct timer t;
	timer_init(&t, L, on_timer);
	for (int round = 0; round < 20; round++) {
		fired = 0;
		int64_t start = mono_us();
		timer_arm_us(&t, 1500);
		int wakes = 0;
		while (!fired) {
			loop_service(L);
			wakes++;
		}
		assert_true(mono_us() - start >= 1500); /* never early */
		assert_true(wakes <= 3);
		assert_false(timer_armed(&t));
	}
	timer_arm(&t, 50);
	timer_cancel(&t);
	assert_false(timer_armed(&t));
	loop_destroy(L);
}

static int ran_a, ran_b;
static void on_a(struct timer *t)
{
	(void)t;
	ran_a++;
}
static void on_b(struct timer *t)
{
	(void)t;
	ran_b++;
}
static void on_post(void *arg)
{
	(*(int *)arg)++;
}

/* A loop past its first service round (which lws returns from at once), with timer a
 * counting in ran_a and timer b in ran_b (both 0). */
static struct loop *primed_loop(struct timer *a, struct timer *b)
{
	struct loop_config cfg = {.port = -1};
	struct loop *L = loop_create(&cfg);
	assert_non_null(L);
	timer_init(a, L, on_a);
	timer_init(b, L, on_b);
	ran_b = 0;
	timer_arm(b, 1);
	while (!ran_b)
		loop_service(L);
	ran_a = ran_b = 0;
	return L;
}

/* Serves the loop until *flag is set; returns the ms it took. */
static int64_t serve_until(struct loop *L, int *flag)
{
	int64_t start = mono_us();
	while (!*flag)
		loop_service(L);
	return (mono_us() - start) / 1000;
}

/* A timer with slack fires with the first wake-up inside its window (here another
 * timer's), and by the window's end when nothing else wakes the loop. */
static void a_timer_with_slack_rides_another_wake_up(void **state)
{
	(void)state;
	struct timer a, b;
	struct loop *L = primed_loop(&a, &b);
	timer_arm_slack(&a, 20, 2000);
	timer_arm(&b, 60);
	serve_until(L, &ran_b);
	assert_int_equal(ran_a, 1); /* carried by b's wake-up, not 2 s later */
	ran_a = 0;
	timer_arm_slack(&a, 10, 30);
	assert_true(serve_until(L, &ran_a) >= 40); /* alone: at the window's end */
	/* cancelled, it fires neither early nor late; re-armed plainly, it has no slack */
	timer_arm_slack(&a, 0, 50);
	timer_cancel(&a);
	timer_arm(&a, 5);
	ran_a = ran_b = 0;
	timer_arm(&b, 40);
	serve_until(L, &ran_b);
	assert_int_equal(ran_a, 1);
	loop_destroy(L);
}

/* A cancelled timer's deadline wakes nobody: the loop sleeps on to the next one. */
static void a_cancelled_deadline_wakes_nobody(void **state)
{
	(void)state;
	struct timer a, b;
	struct loop *L = primed_loop(&a, &b);
	timer_arm(&a, 20);
	timer_arm(&b, 300);
	timer_cancel(&a);
	timer_arm(&a, 200); /* and one moved later */
	timer_cancel(&a);
	timer_arm(&a, 30);
	timer_arm(&a, 250);
	int64_t start = mono_us();
	loop_service(L); /* one sleep: until b */
	assert_true((mono_us() - start) / 1000 >= 240);
	serve_until(L, &ran_b);
	assert_int_equal(ran_a, 1);
	loop_destroy(L);
}

/* A lazy post runs with the loop's next wake-up and causes none; a plain post after it
 * still wakes the loop, and both run. */
static void a_lazy_post_waits_for_a_wake_up(void **state)
{
	(void)state;
	struct timer a, b;
	struct loop *L = primed_loop(&a, &b);
	int lazy = 0, plain = 0;
	assert_int_equal(loop_post_lazy(L, on_post, &lazy), 0);
	timer_arm(&b, 60);
	int64_t start = mono_us();
	while (!lazy)
		loop_service(L);
	assert_true((mono_us() - start) / 1000 >= 55);
	assert_int_equal(ran_b, 1);
	assert_int_equal(loop_post_lazy(L, on_post, &lazy), 0);
	assert_int_equal(loop_post(L, on_post, &plain), 0);
	timer_arm(&b, 5000);
	start = mono_us();
	while (!plain || lazy < 2)
		loop_service(L);
	assert_true((mono_us() - start) / 1000 < 4000);
	loop_destroy(L);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ids_sort_by_creation_and_validate),
		cmocka_unit_test(id_between_sorts_strictly_between),
		cmocka_unit_test(jw_escapes_and_replaces_bad_utf8),
		cmocka_unit_test(turnq_runs_one_at_a_time_in_fifo_order),
		cmocka_unit_test(turnq_puts_in_front_and_requeues_the_running),
		cmocka_unit_test(turnq_dedupe_reject_interrupt_and_limit),
		cmocka_unit_test(turn_policy_names_parse),
		cmocka_unit_test(config_limits_default_and_reject_bad_values_by_name),
		cmocka_unit_test(permission_wildcards_match_like_opencode),
		cmocka_unit_test(permission_rules_last_match_wins_agent_over_global),
		cmocka_unit_test(permission_config_errors_name_the_key),
		cmocka_unit_test(timerq_pops_in_deadline_order),
		cmocka_unit_test(loop_sleeps_until_its_timer_without_spinning),
		cmocka_unit_test(a_timer_with_slack_rides_another_wake_up),
		cmocka_unit_test(a_cancelled_deadline_wakes_nobody),
		cmocka_unit_test(a_lazy_post_waits_for_a_wake_up),
		cmocka_unit_test(catalog_reads_the_config_and_names_bad_entries),
		cmocka_unit_test(command_templates_expand_like_opencode),
		cmocka_unit_test(commands_load_checks_each_entry),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
