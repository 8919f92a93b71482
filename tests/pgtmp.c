#include "pgtmp.h"

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int port = -1;
	if (fd >= 0 && !bind(fd, (struct sockaddr *)&a, sizeof(a)) &&
	    !getsockname(fd, (struct sockaddr *)&a, &len))
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static void conninfo(const struct pgtmp *p, const char *db, char *out, size_t n)
{
	snprintf(out, n, "host=127.0.0.1 port=%d user=agentgate dbname=%s connect_timeout=2",
		 p->port, db);
}

static void print_log(const struct pgtmp *p)
{
	char path[200], line[512];
	snprintf(path, sizeof(path), "%s/server.log", p->dir);
	FILE *f = fopen(path, "r");
	fprintf(stderr, "pgtmp: the server in %s did not start; its log:\n", p->dir);
	while (f && fgets(line, sizeof(line), f))
		fputs(line, stderr);
	if (f)
		fclose(f);
}

static int spawn(struct pgtmp *p)
{
	char port[16];
	snprintf(port, sizeof(port), "%d", p->port);
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		execl("/bin/sh", "sh", SOURCE_DIR "/tests/pgserver.sh", p->dir, port, (char *)NULL);
		_exit(127);
	}
	p->pid = pid;
	/* ready when it answers, bounded; a script that exits says why */
	char ci[200];
	conninfo(p, "postgres", ci, sizeof(ci));
	for (int i = 0; i < 600; i++) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			p->pid = 0;
			if (WIFEXITED(st) && WEXITSTATUS(st) == PGTMP_NONE)
				return PGTMP_NONE;
			print_log(p);
			return -1;
		}
		if (PQping(ci) == PQPING_OK)
			return 0;
		struct timespec ts = {0, 50 * 1000000L};
		nanosleep(&ts, NULL);
	}
	print_log(p);
	pgtmp_stop(p);
	return -1;
}

int pgtmp_start(struct pgtmp *p)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->dir, sizeof(p->dir), "/tmp/agentgate-pg-XXXXXX");
	if (!mkdtemp(p->dir) || (p->port = free_port()) < 0)
		return -1;
	return spawn(p);
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
	if (p->dir[0]) {
		char cmd[200];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", p->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "pgtmp: could not remove %s\n", p->dir);
	}
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
