/* tmpserver: what the tests' own servers (pgtmp.c: PostgreSQL, natstmp.c: nats-server)
 * share — a free port on 127.0.0.1, a temporary directory, their start script
 * (tests/pgserver.sh, tests/natsserver.sh) run as a child, a bounded wait until the
 * server answers, and its log when it does not. A test process's thread only. */
#ifndef AG_TMPSERVER_H
#define AG_TMPSERVER_H
#include <sys/types.h>

/* The start scripts' exit status when the server is not installed. */
#define TMPSERVER_NONE 77

/* A fresh directory from template (mkdtemp's XXXXXX) and a free port: 0, or -1. */
int tmpserver_prepare(char *dir_template, int *port);
/* Runs SOURCE_DIR/tests/script DIR PORT as a child; then waits (bounded: 600 naps of
 * nap_ms) until ready(arg) says it answers. 0 with *pid the child's; TMPSERVER_NONE
 * (not installed); -1 when it exited or never answered (its DIR/server.log printed,
 * named by name; a child still running is left to the caller to stop, *pid set). */
int tmpserver_spawn(const char *script, const char *dir, int port, const char *name,
		    int (*ready)(void *arg), void *arg, int nap_ms, pid_t *pid);
/* Removes dir and what is in it. */
void tmpserver_remove(const char *name, const char *dir);

#endif
