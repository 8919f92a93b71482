#include "natstmp.h"

#include <arpa/inet.h>
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

/* The server answers its INFO line on connect. */
static int answers(int port)
{
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

static void print_log(const struct natstmp *n)
{
	char path[200], line[512];
	snprintf(path, sizeof(path), "%s/server.log", n->dir);
	FILE *f = fopen(path, "r");
	fprintf(stderr, "natstmp: the server in %s did not start; its log:\n", n->dir);
	while (f && fgets(line, sizeof(line), f))
		fputs(line, stderr);
	if (f)
		fclose(f);
}

static int spawn(struct natstmp *n)
{
	char port[16];
	snprintf(port, sizeof(port), "%d", n->port);
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		execl("/bin/sh", "sh", SOURCE_DIR "/tests/natsserver.sh", n->dir, port, (char *)NULL);
		_exit(127);
	}
	n->pid = pid;
	for (int i = 0; i < 600; i++) { /* ready when it answers, bounded */
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			n->pid = 0;
			if (WIFEXITED(st) && WEXITSTATUS(st) == NATSTMP_NONE)
				return NATSTMP_NONE;
			print_log(n);
			return -1;
		}
		if (answers(n->port))
			return 0;
		struct timespec ts = {0, 20 * 1000000L};
		nanosleep(&ts, NULL);
	}
	print_log(n);
	natstmp_stop(n, SIGKILL);
	return -1;
}

int natstmp_start(struct natstmp *n)
{
	memset(n, 0, sizeof(*n));
	snprintf(n->dir, sizeof(n->dir), "/tmp/agentgate-nats-XXXXXX");
	if (!mkdtemp(n->dir) || (n->port = free_port()) < 0)
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
	if (n->dir[0]) {
		char cmd[200];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", n->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "natstmp: could not remove %s\n", n->dir);
	}
}
