#include "tmpserver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
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

int tmpserver_prepare(char *dir_template, int *port)
{
	return mkdtemp(dir_template) && (*port = free_port()) >= 0 ? 0 : -1;
}

static void print_log(const char *name, const char *dir)
{
	char path[300], line[512];
	snprintf(path, sizeof(path), "%s/server.log", dir);
	FILE *f = fopen(path, "r");
	fprintf(stderr, "%s: the server in %s did not start; its log:\n", name, dir);
	while (f && fgets(line, sizeof(line), f))
		fputs(line, stderr);
	if (f)
		fclose(f);
}

int tmpserver_spawn(const char *script, const char *dir, int port, const char *name,
		    int (*ready)(void *arg), void *arg, int nap_ms, pid_t *pid)
{
	char portbuf[16], path[300];
	snprintf(portbuf, sizeof(portbuf), "%d", port);
	snprintf(path, sizeof(path), "%s/tests/%s", SOURCE_DIR, script);
	*pid = fork();
	if (*pid < 0)
		return -1;
	if (*pid == 0) {
		execl("/bin/sh", "sh", path, dir, portbuf, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 600; i++) { /* ready when it answers, bounded */
		int st;
		if (waitpid(*pid, &st, WNOHANG) == *pid) {
			*pid = 0;
			if (WIFEXITED(st) && WEXITSTATUS(st) == TMPSERVER_NONE)
				return TMPSERVER_NONE;
			print_log(name, dir);
			return -1;
		}
		if (ready(arg))
			return 0;
		struct timespec ts = {0, nap_ms * 1000000L};
		nanosleep(&ts, NULL);
	}
	print_log(name, dir);
	return -1;
}

void tmpserver_remove(const char *name, const char *dir)
{
	char cmd[300];
	if (!dir[0])
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "%s: could not remove %s\n", name, dir);
}
