/* lease_pg: session-tree leases in PostgreSQL (lease.h). The tables are the store's
 * (store_pg.c, migration 2); this file only reads and writes them, on a connection of
 * its own. Every statement uses clock_timestamp(), PostgreSQL's clock. */
#include "lease.h"
#include "store_int.h"
#include "log.h"
#include "loop.h"

#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lease {
	PGconn *c; /* NULL until connected, and again once lost */
	char *url;
	char node[LEASE_NODE_MAX];
	char *node_url;
	int64_t expiry_ms;
	char expiry[24]; /* expiry_ms as text, a statement parameter */
	int64_t started;
	int draining;    /* said in every heartbeat once set */
};

#define UNTIL "clock_timestamp() + $2::bigint * interval '1 millisecond'"

/* PostgreSQL's message on one line, without its trailing newline. */
static void pg_why(struct err *e, const char *what, const char *msg)
{
	char line[300];
	pg_one_line(line, sizeof(line), msg && *msg ? msg : "no answer");
	err_set(e, ERR_UNAVAILABLE, "PostgreSQL (session leases): %s: %s", what, line);
}

static int connect_now(struct lease *Ls, struct err *e)
{
	if (Ls->c && PQstatus(Ls->c) == CONNECTION_OK)
		return 0;
	PQfinish(Ls->c);
	char opts[64], who[96];
	snprintf(opts, sizeof(opts), "-c statement_timeout=%d", LEASE_IO_MS);
	snprintf(who, sizeof(who), "agentgate node %.60s (leases)", Ls->node);
	const char *const kw[] = {"connect_timeout", "keepalives", "keepalives_idle",
				  "keepalives_interval", "keepalives_count", "tcp_user_timeout",
				  "options", "application_name", "dbname", NULL};
	const char *const val[] = {"2", "1", "5", "2", "2", "4000", opts, who, Ls->url, NULL};
	Ls->c = PQconnectdbParams(kw, val, 1);
	if (!Ls->c || PQstatus(Ls->c) != CONNECTION_OK) {
		pg_why(e, "cannot connect", Ls->c ? PQerrorMessage(Ls->c) : "out of memory");
		PQfinish(Ls->c);
		Ls->c = NULL;
		return -1;
	}
	return 0;
}

/* Runs q with params; the result (PGRES_TUPLES_OK or COMMAND_OK) or NULL and e. A
 * connection that broke is made again once. */
/* Sends q and waits for its result, LEASE_IO_MS at most (the loop may not hang on a
 * server that holds the connection open and does not answer): the last result, or NULL
 * with why (the connection is then dropped). */
static PGresult *exec_bounded(struct lease *Ls, const char *q, int n,
			      const char *const *params, char *why, size_t wn)
{
	int64_t until = mono_us() + LEASE_IO_MS * 1000LL;
	PGresult *last = NULL, *r;
	if (!PQsendQueryParams(Ls->c, q, n, NULL, params, NULL, NULL, 0)) {
		snprintf(why, wn, "%s", PQerrorMessage(Ls->c));
		return NULL;
	}
	for (;;) {
		while (PQisBusy(Ls->c)) {
			int left = (int)((until - mono_us()) / 1000);
			struct pollfd pfd = {PQsocket(Ls->c), POLLIN, 0};
			if (left <= 0 || poll(&pfd, 1, left) == 0) {
				snprintf(why, wn, "no answer within %d ms", LEASE_IO_MS);
				PQclear(last);
				PQfinish(Ls->c);
				Ls->c = NULL;
				return NULL;
			}
			if (!PQconsumeInput(Ls->c))
				break;
		}
		if (!(r = PQgetResult(Ls->c)))
			break;
		PQclear(last);
		last = r;
	}
	if (!last)
		snprintf(why, wn, "%s", PQerrorMessage(Ls->c));
	return last;
}

static PGresult *run(struct lease *Ls, const char *what, const char *q, int n,
		     const char *const *params, struct err *e)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		char why[300] = "";
		if (connect_now(Ls, e))
			return NULL;
		PGresult *r = exec_bounded(Ls, q, n, params, why, sizeof(why));
		if (!r) {
			pg_why(e, what, why);
			if (Ls->c && PQstatus(Ls->c) == CONNECTION_OK)
				return NULL;
			PQfinish(Ls->c);
			Ls->c = NULL;
			continue;
		}
		ExecStatusType st = PQresultStatus(r);
		if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
			return r;
		pg_why(e, what, PQresultErrorMessage(r));
		PQclear(r);
		if (PQstatus(Ls->c) == CONNECTION_OK)
			return NULL; /* the statement failed, not the connection */
		PQfinish(Ls->c);
		Ls->c = NULL;
	}
	return NULL;
}

/* fn with the first column of each row of r (cleared): the rows, or -1 for no r. */
static int each_root(PGresult *r, void (*fn)(void *arg, const char *root), void *arg)
{
	if (!r)
		return -1;
	int n = PQntuples(r);
	for (int i = 0; i < n; i++)
		fn(arg, PQgetvalue(r, i, 0));
	PQclear(r);
	return n;
}

/* The node's row, kept fresh; 1 when it was fenced (another node took its trees over:
 * this process is to stop), 0, or -1 and e. */
static int heartbeat(struct lease *Ls, const char *draining, struct err *e)
{
	char started[24];
	snprintf(started, sizeof(started), "%lld", (long long)Ls->started);
	const char *p[] = {Ls->node, Ls->node_url, started, draining};
	PGresult *r = run(Ls, "node heartbeat",
			  "INSERT INTO node(id, url, started, seen_at, draining)"
			  " VALUES($1, $2, $3, clock_timestamp(), $4)"
			  " ON CONFLICT (id) DO UPDATE SET url = EXCLUDED.url,"
			  " started = EXCLUDED.started, seen_at = EXCLUDED.seen_at,"
			  " draining = node.draining OR EXCLUDED.draining RETURNING fenced", 4, p, e);
	int fenced = r && PQntuples(r) && PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	return !r ? -1 : fenced;
}

struct lease *lease_open(const char *url, const char *node, const char *url_of_node,
			 int64_t expiry_ms, struct err *e)
{
	struct lease *Ls = calloc(1, sizeof(*Ls));
	if (!Ls || !(Ls->url = strdup(url)) || !(Ls->node_url = strdup(url_of_node ? url_of_node : ""))) {
		if (Ls)
			free(Ls->url);
		free(Ls);
		err_set(e, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	snprintf(Ls->node, sizeof(Ls->node), "%s", node);
	Ls->expiry_ms = expiry_ms;
	snprintf(Ls->expiry, sizeof(Ls->expiry), "%lld", (long long)expiry_ms);
	Ls->started = now_ms();
	/* a node restarted under the same name starts afresh: not draining */
	const char *p[] = {Ls->node};
	PGresult *r = run(Ls, "registering the node", "DELETE FROM node WHERE id = $1", 1, p, e);
	PQclear(r);
	if (!r || heartbeat(Ls, "f", e) < 0) {
		lease_close(Ls);
		return NULL;
	}
	return Ls;
}

void lease_close(struct lease *Ls)
{
	if (!Ls)
		return;
	PQfinish(Ls->c);
	free(Ls->url);
	free(Ls->node_url);
	free(Ls);
}

int64_t lease_expiry_ms(const struct lease *Ls)
{
	return Ls->expiry_ms;
}

const char *lease_node(const struct lease *Ls)
{
	return Ls->node;
}

int lease_take(struct lease *Ls, const char *root, int take_over, char *owner,
	       struct err *e)
{
	const char *p[] = {root, Ls->expiry, Ls->node, take_over ? "t" : "f"};
	/* the upsert takes a free, expired or own lease; else the other select names the
	 * live holder (both see the table as it was when the statement began). Taking an
	 * expired lease over fences its node first (store_pg.c's agentgate_fence): the
	 * update waits for a commit of that node under way, and refuses every later one, so
	 * nothing it buffered lands after the tree is recovered here */
	static const char q[] =
		"WITH prev AS (SELECT node, expires_at FROM lease WHERE root_id = $1),"
		" up AS (INSERT INTO lease(root_id, node, expires_at)"
		" VALUES($1, $3, " UNTIL ") ON CONFLICT (root_id) DO UPDATE"
		" SET node = EXCLUDED.node, expires_at = EXCLUDED.expires_at"
		" WHERE lease.node = EXCLUDED.node OR ($4::boolean AND"
		" lease.expires_at < clock_timestamp())"
		" RETURNING node),"
		" fence AS (UPDATE node SET fenced = true WHERE EXISTS (SELECT 1 FROM up) AND"
		" id = (SELECT node FROM prev) AND id <> $3 RETURNING id)"
		" SELECT node FROM up UNION ALL SELECT node FROM lease WHERE root_id = $1"
		" AND node <> $3 AND NOT EXISTS (SELECT 1 FROM up)";
	/* no row: a node inserted the same new lease concurrently (the select saw the table
	 * without it), or took this node's expired one over (the select saw it still ours);
	 * asking again names the holder. The fence applies only when the upsert took the
	 * lease from another node, never to a holder that renewed meanwhile */
	for (int attempt = 0; attempt < 3; attempt++) {
		PGresult *r = run(Ls, "taking a lease", q, 4, p, e);
		if (!r)
			return -1;
		int rows = PQntuples(r);
		if (rows)
			snprintf(owner, LEASE_NODE_MAX, "%s", PQgetvalue(r, 0, 0));
		PQclear(r);
		if (rows)
			return strcmp(owner, Ls->node) ? 1 : 0;
	}
	err_set(e, ERR_UNAVAILABLE, "PostgreSQL (session leases): the lease of %.64s changed "
		"hands three times while being taken", root);
	return -1;
}

int lease_renew(struct lease *Ls, void (*fn)(void *arg, const char *root), void *arg,
		struct err *e)
{
	int fenced = heartbeat(Ls, Ls->draining ? "t" : "f", e);
	if (fenced < 0)
		return -1;
	if (fenced) {
		err_set(e, ERR_UNAVAILABLE, "node %s was fenced: another node took its session "
			"trees over (it did not renew its leases in time)", Ls->node);
		return LEASE_FENCED;
	}
	const char *p[] = {Ls->node, Ls->expiry};
	PGresult *r = run(Ls, "renewing leases",
			  "UPDATE lease SET expires_at = " UNTIL " WHERE node = $1"
			  " RETURNING root_id", 2, p, e);
	return each_root(r, fn, arg);
}

int lease_release(struct lease *Ls, const char *root, struct err *e)
{
	const char *p[] = {root, Ls->node};
	PGresult *r = run(Ls, "releasing a lease",
			  "DELETE FROM lease WHERE root_id = $1 AND node = $2", 2, p, e);
	PQclear(r);
	return r ? 0 : -1;
}

int lease_release_all(struct lease *Ls, struct err *e)
{
	const char *p[] = {Ls->node};
	PGresult *r = run(Ls, "releasing the node's leases",
			  "DELETE FROM lease WHERE node = $1", 1, p, e);
	PQclear(r);
	if (!r)
		return -1;
	r = run(Ls, "leaving the node table", "DELETE FROM node WHERE id = $1", 1, p, e);
	PQclear(r);
	return r ? 0 : -1;
}

int lease_orphans(struct lease *Ls, int max, void (*fn)(void *arg, const char *root),
		  void *arg, struct err *e)
{
	char lim[16];
	snprintf(lim, sizeof(lim), "%d", max);
	const char *p[] = {lim};
	PGresult *r = run(Ls, "finding sessions without a node",
			  "SELECT DISTINCT s.root_id FROM turn t JOIN session s ON s.id = t.session_id"
			  " WHERE t.state IN ('running', 'queued') AND NOT EXISTS (SELECT 1 FROM"
			  " lease l WHERE l.root_id = s.root_id AND l.expires_at >= clock_timestamp())"
			  " LIMIT $1::int", 1, p, e);
	return each_root(r, fn, arg);
}

int lease_set_draining(struct lease *Ls, struct err *e)
{
	Ls->draining = 1;
	return heartbeat(Ls, "t", e) < 0 ? -1 : 0;
}

int lease_peers(struct lease *Ls, void (*fn)(void *arg, const struct lease_peer *p),
		void *arg, struct err *e)
{
	PGresult *r = run(Ls, "listing nodes",
			  "SELECT n.id, n.url, (extract(epoch FROM clock_timestamp() - n.seen_at)"
			  " * 1000)::bigint, n.draining, (SELECT count(*) FROM lease l WHERE"
			  " l.node = n.id AND l.expires_at >= clock_timestamp())"
			  " FROM node n ORDER BY n.id", 0, NULL, e);
	if (!r)
		return -1;
	int n = PQntuples(r);
	for (int i = 0; i < n; i++) {
		struct lease_peer peer = {
			.node = PQgetvalue(r, i, 0), .url = PQgetvalue(r, i, 1),
			.seen_ms_ago = atoll(PQgetvalue(r, i, 2)),
			.draining = PQgetvalue(r, i, 3)[0] == 't',
			.leases = atoll(PQgetvalue(r, i, 4)),
		};
		peer.alive = peer.seen_ms_ago <= Ls->expiry_ms;
		fn(arg, &peer);
	}
	PQclear(r);
	return n;
}

int lease_node_alive(struct lease *Ls, const char *node, struct err *e)
{
	const char *p[] = {node, Ls->expiry};
	PGresult *r = run(Ls, "asking for a node",
			  "SELECT 1 FROM node WHERE id = $1 AND seen_at >= clock_timestamp() -"
			  " $2::bigint * interval '1 millisecond'", 2, p, e);
	if (!r)
		return -1;
	int alive = PQntuples(r) > 0;
	PQclear(r);
	return alive;
}

int lease_pick_peer(struct lease *Ls, char *node, struct err *e)
{
	const char *p[] = {Ls->node, Ls->expiry};
	PGresult *r = run(Ls, "choosing a node",
			  "SELECT n.id FROM node n WHERE n.id <> $1 AND NOT n.draining AND"
			  " n.seen_at >= clock_timestamp() - $2::bigint * interval '1 millisecond'"
			  " ORDER BY (SELECT count(*) FROM lease l WHERE l.node = n.id), random()"
			  " LIMIT 1", 2, p, e);
	if (!r)
		return -1;
	int found = PQntuples(r) > 0;
	if (found)
		snprintf(node, LEASE_NODE_MAX, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	return found;
}
