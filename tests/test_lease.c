/* Session-tree leases (store/lease.h) and the shared store of cluster nodes, on a real
 * PostgreSQL server the test starts (tests/pgserver.sh). Two or three lease handles
 * stand for as many nodes. Waits are on PostgreSQL's clock, bounded. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "lease.h"
#include "log.h"
#include "loop.h"
#include "pgtmp.h"
#include "store.h"

static struct pgtmp pg;
static int ndb;

static struct loop *new_loop(void)
{
	struct loop_config lc = {.port = -1};
	return loop_create(&lc);
}

/* A fresh database with the store's schema (opened shared, then closed). */
static void fresh(char *url, size_t n)
{
	char name[32];
	struct err e = {0};
	snprintf(name, sizeof(name), "lease%d", ++ndb);
	assert_int_equal(pgtmp_createdb(&pg, name, url, n), 0);
	struct loop *L = new_loop();
	assert_non_null(L);
	struct store *S = store_open_as(url, "n", L, &e);
	if (!S)
		fail_msg("%s", e.msg);
	store_close(S);
	loop_destroy(L);
}

static struct lease *node(const char *url, const char *name, int64_t ms)
{
	struct err e = {0};
	struct lease *Ls = lease_open(url, name, "http://127.0.0.1:1", ms, &e);
	if (!Ls)
		fail_msg("%s", e.msg);
	return Ls;
}

static void nap_ms(int ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static void collect(void *arg, const char *root)
{
	char *out = arg;
	if (*out)
		strcat(out, ",");
	strcat(out, root);
}

static void one_node_holds_a_tree_until_it_expires_and_the_other_takes_it_over(void **state)
{
	(void)state;
	char url[256], owner[LEASE_NODE_MAX];
	struct err e = {0};
	fresh(url, sizeof(url));
	struct lease *a = node(url, "a", 400), *b = node(url, "b", 400);
	assert_int_equal(lease_take(a, "ses_1", 1, owner, &e), 0);
	assert_string_equal(owner, "a");
	assert_int_equal(lease_take(a, "ses_1", 1, owner, &e), 0); /* again: still ours */
	assert_int_equal(lease_take(b, "ses_1", 1, owner, &e), 1);
	assert_string_equal(owner, "a");
	/* a renews: b still cannot take it past the first expiry */
	for (int i = 0; i < 4; i++) {
		char held[256] = "";
		nap_ms(150);
		assert_int_equal(lease_renew(a, collect, held, &e), 1);
		assert_string_equal(held, "ses_1");
		assert_int_equal(lease_take(b, "ses_1", 1, owner, &e), 1);
	}
	/* a stops renewing (PostgreSQL unreachable for it, say): expired, the lease is not
	 * taken by a node that may not take over yet, and a's late renewal keeps it */
	nap_ms(600);
	assert_int_equal(lease_take(b, "ses_1", 0, owner, &e), 1);
	assert_string_equal(owner, "a");
	char held[256] = "";
	assert_int_equal(lease_renew(a, collect, held, &e), 1);
	assert_string_equal(held, "ses_1");
	/* a stops again: once expired, b takes it over */
	int taken = 0;
	for (int i = 0; i < 40 && !taken; i++) {
		nap_ms(50);
		taken = lease_take(b, "ses_1", 1, owner, &e) == 0;
	}
	assert_true(taken);
	held[0] = 0; /* taken over, a was fenced: its renewal says so and keeps nothing */
	assert_int_equal(lease_renew(a, collect, held, &e), LEASE_FENCED);
	assert_string_equal(held, "");
	assert_int_equal(lease_take(a, "ses_1", 1, owner, &e), 1);
	assert_string_equal(owner, "b");
	lease_close(a);
	lease_close(b);
}

static void a_released_tree_is_free_at_once_and_release_all_leaves_the_node_table(void **state)
{
	(void)state;
	char url[256], owner[LEASE_NODE_MAX];
	struct err e = {0};
	fresh(url, sizeof(url));
	struct lease *a = node(url, "a", 60000), *b = node(url, "b", 60000);
	assert_int_equal(lease_take(a, "ses_1", 1, owner, &e), 0);
	assert_int_equal(lease_take(a, "ses_2", 1, owner, &e), 0);
	assert_int_equal(lease_release(b, "ses_1", &e), 0); /* not b's: nothing happens */
	assert_int_equal(lease_take(b, "ses_1", 1, owner, &e), 1);
	assert_int_equal(lease_release(a, "ses_1", &e), 0);
	assert_int_equal(lease_take(b, "ses_1", 1, owner, &e), 0);
	assert_int_equal(lease_node_alive(b, "a", &e), 1);
	assert_int_equal(lease_release_all(a, &e), 0);
	assert_int_equal(lease_take(b, "ses_2", 1, owner, &e), 0);
	assert_int_equal(lease_node_alive(b, "a", &e), 0);
	assert_int_equal(lease_node_alive(b, "nobody", &e), 0);
	lease_close(a);
	lease_close(b);
}

/* Trees with a running or queued turn and no live lease: a dead node's work. */
static void orphans_are_the_unfinished_trees_without_a_live_lease(void **state)
{
	(void)state;
	char url[256], owner[LEASE_NODE_MAX], found[256] = "";
	struct err e = {0};
	fresh(url, sizeof(url));
	static const char *const sql[] = {
		"INSERT INTO session VALUES('ses_a', NULL, 'ses_a', NULL, 0, 1, 1, '{}'),"
		" ('ses_a1', 'ses_a', 'ses_a', NULL, 1, 1, 1, '{}'),"
		" ('ses_b', NULL, 'ses_b', NULL, 0, 1, 1, '{}'),"
		" ('ses_c', NULL, 'ses_c', NULL, 0, 1, 1, '{}'),"
		" ('ses_d', NULL, 'ses_d', NULL, 0, 1, 1, '{}')",
		/* a's child runs a turn, b has one queued, c's is done, d's runs but d is held */
		"INSERT INTO turn(id, session_id, user_message_id, source, state, time_created)"
		" VALUES('trn_1', 'ses_a1', 'msg_1', 'task', 'running', 1),"
		" ('trn_2', 'ses_b', 'msg_2', 'http', 'queued', 1),"
		" ('trn_3', 'ses_c', 'msg_3', 'http', 'completed', 1),"
		" ('trn_4', 'ses_d', 'msg_4', 'http', 'running', 1)",
	};
	const char *db = strrchr(url, '/') + 1;
	for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]); i++) {
		char *r = pgtmp_query(&pg, db, sql[i]);
		assert_non_null(r);
		free(r);
	}
	struct lease *a = node(url, "a", 60000), *b = node(url, "b", 60000);
	assert_int_equal(lease_take(b, "ses_d", 1, owner, &e), 0);
	assert_int_equal(lease_orphans(a, 10, collect, found, &e), 2);
	assert_true(!strcmp(found, "ses_a,ses_b") || !strcmp(found, "ses_b,ses_a"));
	assert_int_equal(lease_take(a, "ses_a", 1, owner, &e), 0);
	found[0] = 0;
	assert_int_equal(lease_orphans(b, 10, collect, found, &e), 1);
	assert_string_equal(found, "ses_b");
	lease_close(a);
	lease_close(b);
}

struct racer {
	struct lease *Ls;
	pthread_barrier_t *go;
	char root[32];
	char owner[LEASE_NODE_MAX];
	int rc;
};

static void *race(void *arg)
{
	struct racer *r = arg;
	struct err e = {0};
	pthread_barrier_wait(r->go);
	r->rc = lease_take(r->Ls, r->root, 1, r->owner, &e);
	return NULL;
}

/* Three nodes (a thread and a connection each) take the same new tree at the same
 * moment, round after round: exactly one wins, and all three name the same owner. */
static void three_nodes_taking_one_tree_at_once_give_it_one_owner(void **state)
{
	(void)state;
	char url[256];
	fresh(url, sizeof(url));
	struct lease *n[3] = {node(url, "a", 60000), node(url, "b", 60000), node(url, "c", 60000)};
	for (int round = 0; round < 40; round++) {
		pthread_barrier_t go;
		pthread_t t[3];
		struct racer r[3];
		pthread_barrier_init(&go, NULL, 3);
		for (int i = 0; i < 3; i++) {
			r[i] = (struct racer){.Ls = n[i], .go = &go};
			snprintf(r[i].root, sizeof(r[i].root), "ses_%d", round);
			assert_int_equal(pthread_create(&t[i], NULL, race, &r[i]), 0);
		}
		int winners = 0;
		for (int i = 0; i < 3; i++) {
			pthread_join(t[i], NULL);
			assert_true(r[i].rc == 0 || r[i].rc == 1);
			winners += r[i].rc == 0;
		}
		pthread_barrier_destroy(&go);
		assert_int_equal(winners, 1);
		for (int i = 1; i < 3; i++)
			assert_string_equal(r[i].owner, r[0].owner);
	}
	for (int i = 0; i < 3; i++)
		lease_close(n[i]);
}

/* A node whose expired lease another node took over is fenced: its next commit is
 * refused (nothing it buffered lands after the tree was recovered elsewhere), its
 * renewal says so, and the same node started again is not fenced. */
static void taking_an_expired_lease_over_fences_its_node_s_commits(void **state)
{
	(void)state;
	char url[256], owner[LEASE_NODE_MAX];
	struct err e = {0};
	fresh(url, sizeof(url));
	struct loop *L = new_loop();
	struct store *S = store_open_as(url, "a", L, &e);
	assert_non_null(S);
	struct lease *a = node(url, "a", 300), *b = node(url, "b", 300);
	assert_int_equal(lease_take(a, "ses_1", 1, owner, &e), 0);
	struct store_session row = {.id = "ses_1", .root_id = "ses_1", .time_created = 1,
				    .time_updated = 1, .data = "{}"};
	assert_int_equal(store_session_put(S, &row), 0);
	assert_int_equal(store_flush(S), 0);
	int taken = 0;
	for (int i = 0; i < 40 && !taken; i++) {
		nap_ms(50);
		taken = lease_take(b, "ses_1", 1, owner, &e) == 0;
	}
	assert_true(taken);
	row.time_updated = 2;
	assert_int_equal(store_session_put(S, &row), 0);
	assert_int_equal(store_flush(S), -1);
	assert_true(store_fenced(S));
	assert_non_null(strstr(store_failure(S), "(a) was fenced"));
	char *updated = pgtmp_query(&pg, strrchr(url, '/') + 1,
				    "SELECT time_updated FROM session WHERE id = 'ses_1'");
	assert_string_equal(updated, "1");
	free(updated);
	char held[64] = "";
	assert_int_equal(lease_renew(a, collect, held, &e), LEASE_FENCED);
	assert_non_null(strstr(e.msg, "node a was fenced"));
	store_close(S);
	lease_close(a);
	/* the node started again under its name */
	a = node(url, "a", 300);
	assert_true(lease_renew(a, collect, held, &e) >= 0);
	S = store_open_as(url, "a", L, &e);
	assert_non_null(S);
	assert_int_equal(store_session_put(S, &row), 0);
	assert_int_equal(store_flush(S), 0);
	store_close(S);
	lease_close(a);
	lease_close(b);
	loop_destroy(L);
}

static void nodes_share_the_store_and_a_single_gateway_is_refused_meanwhile(void **state)
{
	(void)state;
	char url[256];
	struct err e = {0};
	fresh(url, sizeof(url));
	struct loop *L = new_loop();
	assert_non_null(L);
	struct store *n1 = store_open_as(url, "n", L, &e), *n2 = store_open_as(url, "n", L, &e);
	assert_non_null(n1);
	assert_non_null(n2);
	struct store *single = store_open(url, L, &e);
	assert_null(single);
	assert_int_equal(e.code, ERR_BUSY);
	store_close(n1);
	store_close(n2);
	single = store_open(url, L, &e);
	assert_non_null(single);
	e = (struct err){0};
	assert_null(store_open_as(url, "n", L, &e));
	assert_non_null(strstr(e.msg, "single gateway"));
	store_close(single);
	assert_null(store_open_as("sqlite:/tmp/x.db", "n", L, &e));
	assert_non_null(strstr(e.msg, "PostgreSQL"));
	loop_destroy(L);
}

static void an_unreachable_database_is_named_and_the_lease_reconnects(void **state)
{
	(void)state;
	char url[256], owner[LEASE_NODE_MAX];
	struct err e = {0};
	fresh(url, sizeof(url));
	struct lease *a = node(url, "a", 60000);
	assert_int_equal(lease_take(a, "ses_1", 1, owner, &e), 0);
	pgtmp_stop(&pg);
	assert_int_equal(lease_take(a, "ses_2", 1, owner, &e), -1);
	assert_int_equal(e.code, ERR_UNAVAILABLE);
	assert_non_null(strstr(e.msg, "PostgreSQL (session leases)"));
	assert_int_equal(pgtmp_restart(&pg), 0);
	char held[256] = "";
	assert_int_equal(lease_renew(a, collect, held, &e), 1);
	assert_string_equal(held, "ses_1");
	assert_int_equal(lease_take(a, "ses_2", 1, owner, &e), 0);
	lease_close(a);
}

int main(void)
{
	log_init_from_env(LOG_WARN);
	int rc = pgtmp_start(&pg);
	if (rc == PGTMP_NONE) {
		fprintf(stderr, "test_lease: PostgreSQL is not installed (contrib/deps.sh --test)\n");
		return 77;
	}
	if (rc)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(one_node_holds_a_tree_until_it_expires_and_the_other_takes_it_over),
		cmocka_unit_test(a_released_tree_is_free_at_once_and_release_all_leaves_the_node_table),
		cmocka_unit_test(orphans_are_the_unfinished_trees_without_a_live_lease),
		cmocka_unit_test(three_nodes_taking_one_tree_at_once_give_it_one_owner),
		cmocka_unit_test(taking_an_expired_lease_over_fences_its_node_s_commits),
		cmocka_unit_test(nodes_share_the_store_and_a_single_gateway_is_refused_meanwhile),
		cmocka_unit_test(an_unreachable_database_is_named_and_the_lease_reconnects),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	pgtmp_destroy(&pg);
	return failed ? 1 : 0;
}
