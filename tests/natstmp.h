/* natstmp: a nats-server with JetStream of a test's own (tests/natsserver.sh), on
 * 127.0.0.1 and a port that was free, its store in a temporary directory; killed and
 * started again at will (the same directory and port), removed at the end. A test
 * process's thread only. */
#ifndef AG_NATSTMP_H
#define AG_NATSTMP_H
#include <sys/types.h>

#include "tmpserver.h"

struct natstmp {
	char dir[128];
	char url[64]; /* nats://127.0.0.1:PORT */
	int port;
	pid_t pid; /* 0 while stopped */
};

/* Started and accepting connections: 0; NATSTMP_NONE when nats-server is not
 * installed; -1 when it did not start (its log printed). */
#define NATSTMP_NONE TMPSERVER_NONE
int natstmp_start(struct natstmp *n);
/* Stops it with sig (SIGKILL: no clean shutdown at all) and waits for it. */
void natstmp_stop(struct natstmp *n, int sig);
/* Starts it again after natstmp_stop: 0 once it accepts connections, else -1. */
int natstmp_restart(struct natstmp *n);
/* Stops it and removes its directory. */
void natstmp_destroy(struct natstmp *n);

#endif
