/* stdio: a local server as a child process speaking newline-delimited JSON-RPC on its
 * stdin and stdout (MCP's stdio transport). Spawned by the I/O thread with
 * posix_spawnp in a process group of its own (so what it starts dies with it), every
 * other descriptor closed, signals reset; its stderr goes to the log a line at a time,
 * tagged with the server's name. A process that ends is reaped and reported with how it
 * ended; one we stop gets SIGTERM, then SIGKILL after STOP_GRACE_MS, and is reaped in
 * the background (the reaper list) so stopping never blocks the thread. I/O thread only. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* posix_spawn_file_actions_addclosefrom_np, memmem */
#endif
#include "mcp.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#define MSG_MAX (16u << 20) /* one message from a server, at most */
#define ERR_LINE_MAX 4096   /* one stderr line logged, at most */
#define STOP_GRACE_MS 2000  /* SIGTERM to SIGKILL */
#define EXIT_WAIT_MS 1000   /* stdout closed: the process has this long to exit */

struct reaped {
	pid_t pid;
	int64_t kill_at;
	struct reaped *next;
};
static struct reaped *reaper; /* processes stopped and not yet reaped */

static void fd_close(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void describe_status(int st, char *buf, size_t n)
{
	if (WIFEXITED(st))
		snprintf(buf, n, "exited with status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, n, "was killed by signal %d (%s)", WTERMSIG(st),
			 strsignal(WTERMSIG(st)));
	else
		snprintf(buf, n, "ended");
}

/* ---- spawning ---- */

static int spawn(struct server *s, int in[2], int out[2], int err[2], char *why,
		 size_t why_len)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, all;
	pid_t pid;
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, err[1], 2);
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	posix_spawnattr_init(&at);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
					   POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setpgroup(&at, 0);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &all);
	int rc = posix_spawnp(&pid, s->conf->argv[0], &fa, &at, s->conf->argv, s->conf->envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (rc) {
		snprintf(why, why_len, "cannot start \"%s\": %s", s->conf->argv[0], strerror(rc));
		return -1;
	}
	s->proc.pid = pid;
	return 0;
}

int stdio_start(struct server *s, char *why, size_t why_len)
{
	int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
	struct stdio_proc *p = &s->proc;
	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) {
		snprintf(why, why_len, "cannot make pipes: %s", strerror(errno));
		goto fail;
	}
	if (spawn(s, in, out, err, why, why_len))
		goto fail;
	close(in[0]);
	close(out[1]);
	close(err[1]);
	p->in = in[1];
	p->out = out[0];
	p->err = err[0];
	fcntl(p->in, F_SETFL, O_NONBLOCK);
	fcntl(p->out, F_SETFL, O_NONBLOCK);
	fcntl(p->err, F_SETFL, O_NONBLOCK);
	p->outl.max = MSG_MAX;
	p->errl.max = ERR_LINE_MAX;
	p->last_err[0] = '\0';
	p->exit_deadline = 0;
	return 0;
fail:
	for (int i = 0; i < 2; i++) {
		fd_close(&in[i]);
		fd_close(&out[i]);
		fd_close(&err[i]);
	}
	return -1;
}

/* ---- writing ---- */

/* A write to a pipe whose reader is gone raises SIGPIPE at this thread, which blocks
 * it (io.c): take it back so it does not stay pending. */
static void eat_sigpipe(void)
{
	sigset_t set;
	struct timespec zero = {0, 0};
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	sigtimedwait(&set, NULL, &zero);
}

static void flush(struct stdio_proc *p)
{
	while (p->wlen && p->in >= 0) {
		ssize_t w = write(p->in, p->wbuf, p->wlen);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			return;
		if (w < 0) { /* EPIPE: it stopped reading; its stdout's end reports it */
			if (errno == EPIPE)
				eat_sigpipe();
			fd_close(&p->in);
			p->wlen = 0;
			return;
		}
		memmove(p->wbuf, p->wbuf + w, p->wlen - (size_t)w);
		p->wlen -= (size_t)w;
	}
}

int stdio_send(struct server *s, const char *line)
{
	struct stdio_proc *p = &s->proc;
	size_t n = strlen(line);
	if (p->in < 0)
		return -1;
	if (buf_reserve(&p->wbuf, &p->wcap, p->wlen + n + 1))
		return -1;
	memcpy(p->wbuf + p->wlen, line, n);
	p->wbuf[p->wlen + n] = '\n';
	p->wlen += n + 1;
	flush(p);
	return 0;
}

/* ---- reading ---- */

static void on_out_line(void *user, char *line, size_t len)
{
	struct server *s = user;
	cJSON *msg = len ? cJSON_ParseWithLength(line, len) : NULL;
	if (msg)
		server_inbox(s, msg);
	else if (len)
		s->env->host->log(s->env->self, AG_LOG_WARN, "server %s wrote a line that is not "
				  "JSON on stdout (ignored): %.200s", s->conf->name, line);
}

static void on_err_line(void *user, char *line, size_t len)
{
	struct server *s = user;
	if (!len)
		return;
	snprintf(s->proc.last_err, sizeof(s->proc.last_err), "%s", line);
	s->env->host->log(s->env->self, AG_LOG_INFO, "[%s] %s", s->conf->name, line);
}

/* Reads what fd has; 1 at its end (or an error), else 0. */
static int drain(struct server *s, int fd, struct linebuf *lb, line_fn fn)
{
	char buf[65536];
	for (;;) {
		ssize_t r = read(fd, buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return 0;
		if (r <= 0) {
			linebuf_flush(lb, fn, s);
			return 1;
		}
		if (linebuf_feed(lb, buf, (size_t)r, fn, s))
			return 1;
	}
}

/* The process ended or stopped talking: report it, once, with its last stderr line
 * when it exited by itself (why it did, most often). */
static void ended(struct server *s, const char *how, int st)
{
	struct stdio_proc *p = &s->proc;
	char why[512];
	if (p->err >= 0)
		drain(s, p->err, &p->errl, on_err_line); /* its last words */
	if (p->last_err[0] && WIFEXITED(st))
		snprintf(why, sizeof(why), "%s (stderr: %s)", how, p->last_err);
	else
		snprintf(why, sizeof(why), "%s", how);
	server_on_down(s, why);
}

static void out_closed(struct server *s)
{
	struct stdio_proc *p = &s->proc;
	int st = 0;
	char how[128];
	fd_close(&p->out);
	if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
		kill(-p->pid, SIGKILL); /* whatever it started */
		p->pid = 0;
		describe_status(st, how, sizeof(how));
		ended(s, how, st);
		return;
	}
	p->exit_deadline = mono_ms() + EXIT_WAIT_MS;
}

void stdio_ready(struct server *s, const struct curl_waitfd *fd)
{
	struct stdio_proc *p = &s->proc;
	if (fd->fd == p->in && (fd->revents & (CURL_WAIT_POLLOUT)))
		flush(p);
	if (fd->fd == p->err && fd->revents && drain(s, p->err, &p->errl, on_err_line))
		fd_close(&p->err);
	if (fd->fd == p->out && fd->revents && drain(s, p->out, &p->outl, on_out_line))
		out_closed(s);
}

int stdio_fds(struct server *s, struct curl_waitfd *fds)
{
	struct stdio_proc *p = &s->proc;
	int n = 0;
	if (p->out >= 0)
		fds[n++] = (struct curl_waitfd){p->out, CURL_WAIT_POLLIN, 0};
	if (p->err >= 0)
		fds[n++] = (struct curl_waitfd){p->err, CURL_WAIT_POLLIN, 0};
	if (p->in >= 0 && p->wlen)
		fds[n++] = (struct curl_waitfd){p->in, CURL_WAIT_POLLOUT, 0};
	return n;
}

/* stdout closed but the process lingers: after EXIT_WAIT_MS it is killed. */
void stdio_tick(struct server *s, int64_t now)
{
	struct stdio_proc *p = &s->proc;
	int st = 0;
	char how[160];
	if (!p->pid || !p->exit_deadline)
		return;
	if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
		describe_status(st, how, sizeof(how));
	} else if (now >= p->exit_deadline) {
		kill(-p->pid, SIGKILL);
		waitpid(p->pid, &st, 0);
		snprintf(how, sizeof(how), "closed its stdout (killed)");
	} else {
		return;
	}
	kill(-p->pid, SIGKILL);
	p->pid = 0;
	ended(s, how, st);
}

int64_t stdio_deadline(const struct server *s)
{
	int64_t d = s->proc.exit_deadline;
	for (struct reaped *r = reaper; r; r = r->next)
		if (!d || r->kill_at < d)
			d = r->kill_at;
	return reaper && (!d || d > mono_ms() + 100) ? mono_ms() + 100 : d;
}

/* ---- stopping ---- */

void stdio_stop(struct server *s)
{
	struct stdio_proc *p = &s->proc;
	fd_close(&p->in); /* a well-behaved server exits at the end of its input */
	fd_close(&p->out);
	fd_close(&p->err);
	linebuf_free(&p->outl);
	linebuf_free(&p->errl);
	free(p->wbuf);
	p->wbuf = NULL;
	p->wlen = p->wcap = 0;
	p->exit_deadline = 0;
	if (p->pid > 0) {
		struct reaped *r = malloc(sizeof(*r));
		kill(-p->pid, SIGTERM);
		if (r) {
			*r = (struct reaped){p->pid, mono_ms() + STOP_GRACE_MS, reaper};
			reaper = r;
		} else {
			kill(-p->pid, SIGKILL);
			waitpid(p->pid, NULL, 0);
		}
	}
	p->pid = 0;
}

/* Reaps the stopped processes that have exited; kills those past their grace. With
 * wait set (unloading), waits for every one, killing them now. */
void stdio_reap(int wait)
{
	int64_t now = mono_ms();
	for (struct reaped **pp = &reaper; *pp;) {
		struct reaped *r = *pp;
		int st;
		if (wait || now >= r->kill_at) {
			kill(-r->pid, SIGKILL);
			waitpid(r->pid, &st, 0);
		} else if (waitpid(r->pid, &st, WNOHANG) != r->pid) {
			pp = &r->next;
			continue;
		}
		kill(-r->pid, SIGKILL); /* what it left behind in its group */
		*pp = r->next;
		free(r);
	}
}
