/* The SQLite store under continuous writes, as a streaming server uses it: the
 * checkpoint thread really folds the WAL into the database file, and the WAL stays
 * bounded when commits follow each other without a pause. A real SQLite database in a
 * temp directory, driven by a real loop (the commit timer). What every backend must do
 * (event batches found by their seqs among the rest) is test_store_conformance's. */
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(the_checkpoint_thread_folds_the_wal_into_the_database),
		cmocka_unit_test(the_wal_stays_bounded_under_back_to_back_commits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
