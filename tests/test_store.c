/* The store under continuous writes, as a streaming server uses it: the checkpoint
 * thread really folds the WAL into the database file, the WAL stays bounded when
 * commits follow each other without a pause, and the event log's batches are found by
 * the sequence numbers they hold. A real SQLite database in a temp directory, driven by
 * a real loop (the commit timer). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"
#include "store.h"

struct fixture {
	struct h h;
	char dir[300];
	struct store *S;
};

static void open_store(struct fixture *f)
{
	h_dir(&f->h, NULL);
	h_start(&f->h, 0);
	snprintf(f->dir, sizeof(f->dir), "%s/store", f->h.dir);
	f->S = store_open(f->dir, f->h.L, NULL);
	assert_non_null(f->S);
}

static void close_store(struct fixture *f)
{
	store_close(f->S);
	h_stop(&f->h);
}

static long file_size(const char *dir, const char *name)
{
	char path[400];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	struct stat st;
	return stat(path, &st) ? 0 : (long)st.st_size;
}

/* Rows of event_batch in the database file alone, without its WAL: what a checkpoint
 * has copied. The file is copied so that SQLite cannot find the WAL beside it. */
static int64_t rows_in_main_file(struct fixture *f)
{
	char src[400], dst[400];
	snprintf(src, sizeof(src), "%s/agentgate.db", f->dir);
	snprintf(dst, sizeof(dst), "%s/copy.db", f->h.dir);
	FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
	assert_non_null(in);
	assert_non_null(out);
	char buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		assert_int_equal(fwrite(buf, 1, n, out), n);
	fclose(in);
	fclose(out);
	sqlite3 *db;
	assert_int_equal(sqlite3_open_v2(dst, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_stmt *q;
	int64_t rows = -1;
	if (sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM event_batch", -1, &q, NULL) == SQLITE_OK) {
		if (sqlite3_step(q) == SQLITE_ROW)
			rows = sqlite3_column_int64(q, 0);
		sqlite3_finalize(q);
	}
	sqlite3_close(db);
	remove(dst);
	return rows;
}

static int checkpointed(struct h *h, void *arg)
{
	(void)h;
	return rows_in_main_file(arg) == 3;
}

static void the_checkpoint_thread_folds_the_wal_into_the_database(void **state)
{
	(void)state;
	struct fixture f;
	open_store(&f);
	static char blob[100000];
	for (int i = 0; i < 3; i++)
		assert_int_equal(store_event_batch_put(f.S, i * 10 + 1, i * 10 + 10, blob, sizeof(blob)), 0);
	assert_int_equal(store_flush(f.S), 0);
	assert_true(file_size(f.dir, "agentgate.db-wal") > (long)sizeof(blob) * 3);
	/* the checkpoint runs every 500 ms on its own thread; the store stays open */
	assert_true(h_until(&f.h, checkpointed, &f, 5000));
	close_store(&f);
}

static void the_wal_stays_bounded_under_back_to_back_commits(void **state)
{
	(void)state;
	struct fixture f;
	open_store(&f);
	static char blob[1 << 20];
	long max_wal = 0;
	/* 48 MiB through commits that never pause: without a restart the WAL holds it all */
	for (int i = 0; i < 48; i++) {
		assert_int_equal(store_event_batch_put(f.S, i + 1, i + 1, blob, sizeof(blob)), 0);
		assert_int_equal(store_flush(f.S), 0);
		long w = file_size(f.dir, "agentgate.db-wal");
		if (w > max_wal)
			max_wal = w;
	}
	assert_int_equal(store_event_max_seq(f.S), 48);
	/* 4096 frames (the restart bound) plus one commit of 1 MiB, with frame headers */
	assert_true(max_wal < 20L * 1024 * 1024);
	close_store(&f);
}

struct found {
	int64_t first, last;
	int calls;
};

static int found_batch(void *arg, int64_t first, int64_t last, const void *data, size_t len)
{
	struct found *x = arg;
	x->first = first;
	x->last = last;
	x->calls++;
	assert_int_equal(len, last - first + 1);
	assert_int_equal(((const char *)data)[0], (char)first);
	return 0;
}

static int64_t first_after(struct store *S, int64_t after)
{
	struct found x = {0, 0, 0};
	assert_true(store_event_batch_after(S, after, found_batch, &x) >= 0);
	assert_true(x.calls <= 1);
	return x.calls ? x.first : 0;
}

static void event_batches_are_found_by_the_sequence_numbers_they_hold(void **state)
{
	(void)state;
	struct fixture f;
	open_store(&f);
	assert_int_equal(store_event_max_seq(f.S), 0);
	assert_int_equal(first_after(f.S, 0), 0);
	const int64_t b[][2] = {{1, 3}, {4, 10}, {11, 11}, {12, 20}};
	for (int i = 0; i < 4; i++) {
		char data[16];
		memset(data, (char)b[i][0], sizeof(data));
		store_event_batch_put(f.S, b[i][0], b[i][1], data, (size_t)(b[i][1] - b[i][0] + 1));
	}
	assert_int_equal(store_event_min_seq(f.S), 1);
	assert_int_equal(store_event_max_seq(f.S), 20);
	const int64_t cases[][2] = {{0, 1}, {2, 1}, {3, 4}, {5, 4}, {9, 4}, {10, 11},
				    {11, 12}, {19, 12}, {20, 0}, {99, 0}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(first_after(f.S, cases[i][0]), cases[i][1]);
	/* keep the newest 10 events: batches wholly older go, the one holding seq 11 stays */
	assert_int_equal(store_event_prune(f.S, 10), 0);
	assert_int_equal(store_event_min_seq(f.S), 11);
	assert_int_equal(first_after(f.S, 0), 11);
	close_store(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(the_checkpoint_thread_folds_the_wal_into_the_database),
		cmocka_unit_test(the_wal_stays_bounded_under_back_to_back_commits),
		cmocka_unit_test(event_batches_are_found_by_the_sequence_numbers_they_hold),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
