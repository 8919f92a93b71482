/* spawn: the real server for socket-level tests (spawn.h). */
#include "spawn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int spawn_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) ||
	    getsockname(fd, (struct sockaddr *)&a, &l)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return ntohs(a.sin_port);
}

int spawn_write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	int rc = fputs(text, f) < 0 ? -1 : 0;
	return fclose(f) || rc ? -1 : 0;
}

int spawn_http(int port, const char *method, const char *path, const char *token,
	       const char *json_body, char **body)
{
	if (body)
		*body = NULL;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (fd < 0)
		return 0;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return 0;
	}
	char req[8192];
	size_t blen = json_body ? strlen(json_body) : 0;
	int n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
			 "Connection: close\r\n%s%s%s%s%zu\r\n\r\n%s", method, path, port,
			 token ? "Authorization: Bearer " : "", token ? token : "", token ? "\r\n" : "",
			 json_body ? "Content-Type: application/json\r\nContent-Length: "
				   : "Content-Length: ",
			 blen, json_body ? json_body : "");
	if (n <= 0 || n >= (int)sizeof(req) || write(fd, req, (size_t)n) != n) {
		close(fd);
		return 0;
	}
	size_t len = 0, cap = 65536;
	char *buf = malloc(cap);
	long long deadline = now_ms() + 10000;
	while (buf) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		long long left = deadline - now_ms();
		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			break;
		if (len + 4096 > cap) {
			char *nb = realloc(buf, cap *= 2);
			if (!nb)
				break;
			buf = nb;
		}
		ssize_t r = read(fd, buf + len, cap - len - 1);
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	if (!buf)
		return 0;
	buf[len] = 0;
	int status = 0;
	sscanf(buf, "HTTP/1.%*d %d", &status);
	char *b = strstr(buf, "\r\n\r\n");
	if (body && b) {
		*body = strdup(b + 4);
	}
	free(buf);
	return status;
}

pid_t spawn_serve(const char *bin, int port, const char *data, const char *config,
		  const char *token, const char *log, const char *const *extra)
{
	char ps[16];
	const char *argv[48] = {bin, "serve", "--port", ps, "--data", data};
	int n = 6;
	snprintf(ps, sizeof(ps), "%d", port);
	if (config) {
		argv[n++] = "--config";
		argv[n++] = config;
	}
	for (int i = 0; extra && extra[i] && n < 46; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open(log ? log : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(99);
		setenv("AGENTGATE_LOG", "warn", 0);
		execv(bin, (char *const *)argv);
		_exit(98);
	}
	if (pid < 0)
		return -1;
	long long deadline = now_ms() + 15000;
	while (now_ms() < deadline) {
		if (spawn_http(port, "GET", "/global/health", token, NULL, NULL) == 200)
			return pid;
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return -1; /* it exited */
		struct timespec ts = {0, 20 * 1000000};
		nanosleep(&ts, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

int spawn_stop(pid_t pid, int signo)
{
	int st = 0;
	if (pid <= 0)
		return -1;
	kill(pid, signo);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return st;
}
