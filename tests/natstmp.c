#include "natstmp.h"
#include "tmpserver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* The server answers its INFO line on connect. */
static int answers(void *arg)
{
	int port = *(const int *)arg;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	char buf[5] = {0};
	int ok = fd >= 0 && !connect(fd, (struct sockaddr *)&a, sizeof(a)) &&
		 recv(fd, buf, 4, MSG_WAITALL) == 4 && !memcmp(buf, "INFO", 4);
	if (fd >= 0)
		close(fd);
	return ok;
}

static int spawn(struct natstmp *n)
{
	int rc = tmpserver_spawn("natsserver.sh", n->dir, n->port, "natstmp", answers, &n->port,
				 20, &n->pid);
	if (rc == -1)
		natstmp_stop(n, SIGKILL);
	return rc;
}

int natstmp_start(struct natstmp *n)
{
	memset(n, 0, sizeof(*n));
	snprintf(n->dir, sizeof(n->dir), "/tmp/agentgate-nats-XXXXXX");
	if (tmpserver_prepare(n->dir, &n->port))
		return -1;
	snprintf(n->url, sizeof(n->url), "nats://127.0.0.1:%d", n->port);
	return spawn(n);
}

void natstmp_stop(struct natstmp *n, int sig)
{
	if (!n->pid)
		return;
	kill(n->pid, sig);
	waitpid(n->pid, NULL, 0);
	n->pid = 0;
}

int natstmp_restart(struct natstmp *n)
{
	return n->pid ? 0 : spawn(n) == 0 ? 0 : -1;
}

void natstmp_destroy(struct natstmp *n)
{
	natstmp_stop(n, SIGTERM);
	tmpserver_remove("natstmp", n->dir);
}
