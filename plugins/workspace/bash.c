#include "bash.h"
#include "outcap.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TICK_MS 100  /* how often a running shell is checked for its exit */
#define LINGER_MS 100 /* output read after the shell exited, if its pipe stays open */

static int64_t mono_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&t, NULL);
}

/* ---- the child: async-signal-safe calls only ---- */

static void say(int fd, const char *a, const char *b)
{
	ssize_t w = write(fd, a, strlen(a));
	w = write(fd, b, strlen(b));
	w = write(fd, "\n", 1);
	(void)w;
}

static void child(const struct bash_spec *s, char *const argv[], int in_fd, int out_fd,
		  const struct sigaction *dfl, const sigset_t *none)
{
	static const int sigs[] = {SIGPIPE, SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGCHLD, SIGTSTP};
	setpgid(0, 0);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], dfl, NULL);
	sigprocmask(SIG_SETMASK, none, NULL);
	if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0)
		_exit(126);
	if (chdir(s->cwd)) {
		say(2, "bash tool: cannot enter the working directory ", s->cwd);
		_exit(126);
	}
	if (close_range(3, ~0U, 0))
		for (int fd = 3; fd < 4096; fd++)
			close(fd);
	execve(argv[0], argv, s->envp);
	say(2, "bash tool: cannot run the shell ", argv[0]);
	_exit(127);
}

/* ---- the group ---- */

/* The state and process group of /proc/PID/stat; 0 when read. */
static int proc_stat(const char *pid, char *state, long *pgrp)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%s/stat", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	const char *p = strrchr(buf, ')'); /* the name may hold anything */
	long ppid;
	return p && sscanf(p + 1, " %c %ld %ld", state, &ppid, pgrp) == 3 ? 0 : -1;
}

int bash_group_alive(pid_t pgid)
{
	if (kill(-pgid, 0) == -1 && errno == ESRCH)
		return 0;
	DIR *d = opendir("/proc"); /* signals reach zombies too: look for a live one */
	struct dirent *e;
	int alive = !d;
	while (d && !alive && (e = readdir(d))) {
		char state;
		long pgrp;
		if (e->d_name[0] >= '1' && e->d_name[0] <= '9' &&
		    proc_stat(e->d_name, &state, &pgrp) == 0)
			alive = pgrp == pgid && state != 'Z' && state != 'X';
	}
	if (d)
		closedir(d);
	return alive;
}

/* Until the shell is reaped and nothing of its group lives, at most ms; 1 when so. */
static int wait_group(pid_t pg, int *reaped, int *status, int64_t ms)
{
	int64_t end = mono_ms() + ms;
	for (;;) {
		if (!*reaped && waitpid(pg, status, WNOHANG) == pg)
			*reaped = 1;
		if (*reaped && !bash_group_alive(pg))
			return 1;
		if (mono_ms() >= end)
			return 0;
		sleep_ms(10);
	}
}

static void kill_group(pid_t pg, int *reaped, int *status, int64_t grace_ms)
{
	kill(-pg, SIGTERM);
	if (wait_group(pg, reaped, status, grace_ms))
		return;
	kill(-pg, SIGKILL);
	wait_group(pg, reaped, status, 2000);
}

/* ---- the parent ---- */

/* Reads what is there; 1 at end of file. */
static int drain(int fd, struct outcap *out)
{
	char buf[16384];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n > 0)
			outcap_add(out, buf, (size_t)n);
		else if (n == 0)
			return 1;
		else
			return errno == EINTR ? drain(fd, out) : 0;
	}
}

struct run {
	const struct bash_spec *s;
	struct bash_result *r;
	struct outcap out;
	pid_t pid;
	int fd, eof, reaped, status;
};

static int cancelled(const struct run *u)
{
	return u->s->cancelled && atomic_load(u->s->cancelled);
}

/* Until the shell is done, the timeout passes or a cancel comes. */
static void watch(struct run *u)
{
	const struct bash_spec *s = u->s;
	int64_t start = mono_ms(), deadline = start + s->timeout_ms, exited = 0, last = start;
	int dirty = 0;
	for (;;) {
		int64_t now = mono_ms();
		if ((u->r->cancelled = cancelled(u)) || (u->r->timed_out = now >= deadline))
			return;
		if (!u->reaped && waitpid(u->pid, &u->status, WNOHANG) == u->pid)
			u->reaped = 1, exited = now;
		if (u->reaped && (u->eof || now - exited >= LINGER_MS))
			return;
		if (dirty && s->progress && now - last >= s->progress_ms) {
			s->progress(s->arg, &u->out);
			dirty = 0;
			last = now;
		}
		struct pollfd pf[2] = {{u->eof ? -1 : u->fd, POLLIN, 0}, {s->cancel_fd, POLLIN, 0}};
		int64_t wait = deadline - now < TICK_MS ? deadline - now : TICK_MS;
		if (u->reaped)
			wait = 10;
		if (poll(pf, 2, (int)wait) > 0 && (pf[0].revents & (POLLIN | POLLHUP | POLLERR))) {
			size_t before = (size_t)u->out.total;
			u->eof = drain(u->fd, &u->out);
			dirty |= u->out.total != before;
		}
	}
}

static int start(struct run *u, int *pipe_out)
{
	const struct bash_spec *s = u->s;
	char *const argv[] = {(char *)(s->shell ? s->shell : "/bin/sh"), "-c",
			      (char *)s->command, NULL};
	struct sigaction dfl;
	sigset_t none;
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&none);
	int p[2], in = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (in < 0 || pipe2(p, O_CLOEXEC)) {
		snprintf(u->r->error, sizeof(u->r->error), "cannot start the command: %s",
			 strerror(errno));
		if (in >= 0)
			close(in);
		return -1;
	}
	u->pid = fork();
	if (u->pid == 0)
		child(s, argv, in, p[1], &dfl, &none);
	int err = errno;
	close(in);
	close(p[1]);
	if (u->pid < 0) {
		close(p[0]);
		snprintf(u->r->error, sizeof(u->r->error), "cannot start the command: %s",
			 strerror(err));
		return -1;
	}
	setpgid(u->pid, u->pid); /* also here: a cancel may come before the child's own */
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	*pipe_out = p[0];
	return 0;
}

int bash_exec(const struct bash_spec *s, struct bash_result *r)
{
	struct run u = {.s = s, .r = r};
	memset(r, 0, sizeof(*r));
	r->exit_code = -1;
	if (outcap_init(&u.out, s->max_output)) {
		snprintf(r->error, sizeof(r->error), "out of memory");
		return -1;
	}
	if (start(&u, &u.fd)) {
		outcap_free(&u.out);
		return -1;
	}
	r->pgid = u.pid;
	watch(&u);
	if (r->cancelled || r->timed_out)
		kill_group(u.pid, &u.reaped, &u.status, s->grace_ms);
	if (!u.eof)
		drain(u.fd, &u.out);
	close(u.fd);
	if (!u.reaped)
		waitpid(u.pid, &u.status, 0);
	if (WIFEXITED(u.status))
		r->exit_code = WEXITSTATUS(u.status);
	else if (WIFSIGNALED(u.status))
		r->signal = WTERMSIG(u.status);
	r->truncated = outcap_truncated(&u.out);
	r->total = u.out.total;
	r->output = outcap_text(&u.out);
	outcap_free(&u.out);
	return 0;
}
