/* pgtmp: a PostgreSQL server of a test's own (tests/pgserver.sh: a cluster in a
 * temporary directory, run as an unprivileged user), on 127.0.0.1 and a port that was
 * free, stopped and started again at will (the same cluster and port), removed at the
 * end. A test process's thread only. */
#ifndef AG_PGTMP_H
#define AG_PGTMP_H
#include <stddef.h>
#include <sys/types.h>

#include "tmpserver.h"

struct pgtmp {
	char dir[128];
	int port;
	pid_t pid; /* the postmaster; 0 while stopped */
};

/* A fresh cluster, started: 0; PGTMP_NONE when PostgreSQL is not installed; -1 when it
 * did not start (its log printed). */
#define PGTMP_NONE TMPSERVER_NONE
int pgtmp_start(struct pgtmp *p);
/* Stops the server (a fast shutdown: sessions are ended) and waits for it. */
void pgtmp_stop(struct pgtmp *p);
/* Starts it again after pgtmp_stop: 0 once it accepts connections, else -1. */
int pgtmp_restart(struct pgtmp *p);
/* Stops it and removes its directory. */
void pgtmp_destroy(struct pgtmp *p);
/* Creates database `name` — collated by ICU's en-US, so any text the store sorts must
 * sort bytewise by its own collation — and writes its URL to url. 0 or -1. */
int pgtmp_createdb(struct pgtmp *p, const char *name, char *url, size_t n);
/* Runs sql in database db as the superuser: the first column of the first row,
 * malloc'd ("" for a command without rows), or NULL on error (printed). */
char *pgtmp_query(struct pgtmp *p, const char *db, const char *sql);

#endif
