#include "pgtmp.h"
#include "tmpserver.h"

#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static void conninfo(const struct pgtmp *p, const char *db, char *out, size_t n)
{
	snprintf(out, n, "host=127.0.0.1 port=%d user=agentgate dbname=%s connect_timeout=2",
		 p->port, db);
}

static int answers(void *arg)
{
	char ci[200];
	conninfo(arg, "postgres", ci, sizeof(ci));
	return PQping(ci) == PQPING_OK;
}

static int spawn(struct pgtmp *p)
{
	int rc = tmpserver_spawn("pgserver.sh", p->dir, p->port, "pgtmp", answers, p, 50, &p->pid);
	if (rc == -1)
		pgtmp_stop(p);
	return rc;
}

int pgtmp_start(struct pgtmp *p)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->dir, sizeof(p->dir), "/tmp/agentgate-pg-XXXXXX");
	return tmpserver_prepare(p->dir, &p->port) ? -1 : spawn(p);
}

void pgtmp_stop(struct pgtmp *p)
{
	if (!p->pid)
		return;
	kill(p->pid, SIGINT);
	waitpid(p->pid, NULL, 0);
	p->pid = 0;
}

int pgtmp_restart(struct pgtmp *p)
{
	return p->pid ? 0 : spawn(p) == 0 ? 0 : -1;
}

void pgtmp_destroy(struct pgtmp *p)
{
	pgtmp_stop(p);
	tmpserver_remove("pgtmp", p->dir);
}

char *pgtmp_query(struct pgtmp *p, const char *db, const char *sql)
{
	char ci[200];
	conninfo(p, db, ci, sizeof(ci));
	PGconn *c = PQconnectdb(ci);
	char *out = NULL;
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "pgtmp: %s", PQerrorMessage(c));
	} else {
		PGresult *r = PQexec(c, sql);
		ExecStatusType s = PQresultStatus(r);
		if (s == PGRES_TUPLES_OK)
			out = strdup(PQntuples(r) && PQnfields(r) ? PQgetvalue(r, 0, 0) : "");
		else if (s == PGRES_COMMAND_OK)
			out = strdup("");
		else
			fprintf(stderr, "pgtmp: %s: %s", sql, PQresultErrorMessage(r));
		PQclear(r);
	}
	PQfinish(c);
	return out;
}

int pgtmp_createdb(struct pgtmp *p, const char *name, char *url, size_t n)
{
	char sql[200];
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s TEMPLATE template0 LOCALE_PROVIDER icu "
		 "ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'", name);
	char *r = pgtmp_query(p, "postgres", sql);
	if (!r)
		return -1;
	free(r);
	snprintf(url, n, "postgres://agentgate@127.0.0.1:%d/%s", p->port, name);
	return 0;
}
