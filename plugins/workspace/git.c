#include "git.h"
#include "sbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char git_bin[PATH_MAX];
static char **base_env; /* the tools' environment without GIT_* and LC_ALL */

int git_init(char *const *envp)
{
	const char *path = "/usr/local/bin:/usr/bin:/bin";
	int n = 0, k = 0;
	for (char *const *e = envp; e && *e; e++, n++)
		if (!strncmp(*e, "PATH=", 5))
			path = *e + 5;
	free(base_env);
	if (!(base_env = calloc((size_t)n + 1, sizeof(char *))))
		return -1;
	for (char *const *e = envp; e && *e; e++)
		if (strncmp(*e, "GIT_", 4) && strncmp(*e, "LC_ALL=", 7))
			base_env[k++] = *e;
	git_bin[0] = 0;
	for (const char *p = path; *p;) {
		size_t len = strcspn(p, ":");
		char cand[PATH_MAX];
		if (len && snprintf(cand, sizeof(cand), "%.*s/git", (int)len, p) < (int)sizeof(cand) &&
		    access(cand, X_OK) == 0) {
			snprintf(git_bin, sizeof(git_bin), "%s", cand);
			break;
		}
		p += len + (p[len] == ':');
	}
	return git_bin[0] ? 0 : -1;
}

void git_shutdown(void)
{
	free(base_env);
	base_env = NULL;
	git_bin[0] = 0;
}

static int64_t mono_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* ---- one process ---- */

struct proc {
	const char *cwd;
	char *const *argv, *const *envp;
	const char *in;
	size_t inlen;
	struct sbuf out;
	char err[512];
	size_t errlen;
};

/* Feeds stdin and reads stdout and stderr until both close or the deadline passes. */
static int pump(struct proc *p, int in, int out, int err)
{
	int64_t deadline = mono_ms() + GIT_TIMEOUT_MS;
	size_t off = 0;
	char buf[65536];
	if (!p->inlen) {
		close(in);
		in = -1;
	}
	int rc = 0;
	while (out >= 0 || err >= 0) {
		struct pollfd f[3] = {{in, POLLOUT, 0}, {out, POLLIN, 0}, {err, POLLIN, 0}};
		int64_t left = deadline - mono_ms();
		if (left <= 0 || (poll(f, 3, (int)left) < 0 && errno != EINTR)) {
			rc = -1;
			break;
		}
		if (in >= 0 && f[0].revents) {
			ssize_t w = f[0].revents & POLLOUT ? write(in, p->in + off, p->inlen - off) : -1;
			if (w > 0)
				off += (size_t)w;
			if (w <= 0 && errno != EAGAIN && errno != EINTR)
				off = p->inlen; /* it stopped reading: what it got is what it gets */
			if (off == p->inlen) {
				close(in);
				in = -1;
			}
		}
		for (int k = 1; k < 3; k++) {
			int *fd = k == 1 ? &out : &err;
			if (*fd < 0 || !f[k].revents)
				continue;
			ssize_t r = read(*fd, buf, sizeof(buf));
			if (r > 0 && k == 1)
				sbuf_add(&p->out, buf, (size_t)r);
			else if (r > 0 && p->errlen + 1 < sizeof(p->err)) {
				size_t n = (size_t)r < sizeof(p->err) - 1 - p->errlen
						   ? (size_t)r : sizeof(p->err) - 1 - p->errlen;
				memcpy(p->err + p->errlen, buf, n);
				p->errlen += n;
			}
			if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
				close(*fd);
				*fd = -1;
			}
		}
	}
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	if (err >= 0)
		close(err);
	return rc;
}

/* Starts p with its stdin, stdout and stderr on the pipes' ends: posix_spawn (no copy
 * of the gateway's page tables, as a fork would make), default signals, nothing else
 * of the gateway's open. The pid, or -1. */
static pid_t spawn(const struct proc *p, int in, int out, int err)
{
	static const int sigs[] = {SIGPIPE, SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGCHLD};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, dfl;
	pid_t pid = -1;
	sigemptyset(&none);
	sigemptyset(&dfl);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaddset(&dfl, sigs[i]);
	if (posix_spawn_file_actions_init(&fa))
		return -1;
	if (posix_spawnattr_init(&at)) {
		posix_spawn_file_actions_destroy(&fa);
		return -1;
	}
	int bad = posix_spawn_file_actions_adddup2(&fa, in, 0) ||
		  posix_spawn_file_actions_adddup2(&fa, out, 1) ||
		  posix_spawn_file_actions_adddup2(&fa, err, 2) ||
		  posix_spawn_file_actions_addclosefrom_np(&fa, 3) ||
		  posix_spawn_file_actions_addchdir_np(&fa, p->cwd) ||
		  posix_spawnattr_setsigmask(&at, &none) || posix_spawnattr_setsigdefault(&at, &dfl) ||
		  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	if (!bad && posix_spawn(&pid, p->argv[0], &fa, &at, p->argv, p->envp))
		pid = -1;
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	return pid;
}

/* Runs p; its exit status, or -1 (not started, timed out: killed). */
static int run(struct proc *p)
{
	int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) {
		for (int i = 0; i < 2; i++) {
			if (in[i] >= 0) close(in[i]);
			if (out[i] >= 0) close(out[i]);
			if (err[i] >= 0) close(err[i]);
		}
		return -1;
	}
	pid_t pid = spawn(p, in[0], out[1], err[1]);
	close(in[0]);
	close(out[1]);
	close(err[1]);
	if (pid < 0) {
		close(in[1]);
		close(out[0]);
		close(err[0]);
		return -1;
	}
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	int timed_out = pump(p, in[1], out[0], err[0]) != 0;
	if (timed_out) {
		kill(pid, SIGKILL);
		snprintf(p->err, sizeof(p->err), "git took over %d ms and was killed", GIT_TIMEOUT_MS);
	}
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return timed_out ? -1 : WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ---- the private environment ---- */

static char **make_env(const struct git_repo *r, const char *index, char *own[8])
{
	int n = 0;
	while (base_env && base_env[n])
		n++;
	char **env = calloc((size_t)n + 9, sizeof(char *));
	if (!env)
		return NULL;
	memcpy(env, base_env, (size_t)n * sizeof(char *));
	int k = 0;
	if (asprintf(&own[k++], "GIT_DIR=%s", r->gitdir) < 0 ||
	    asprintf(&own[k++], "GIT_WORK_TREE=%s", r->top) < 0 ||
	    (index ? asprintf(&own[k++], "GIT_INDEX_FILE=%s", index)
		   : asprintf(&own[k++], "GIT_INDEX_FILE=%s/index", r->store)) < 0 ||
	    asprintf(&own[k++], "GIT_OBJECT_DIRECTORY=%s/objects", r->store) < 0 ||
	    !(own[k++] = strdup("GIT_LITERAL_PATHSPECS=1")) ||
	    !(own[k++] = strdup("GIT_TERMINAL_PROMPT=0")) ||
	    !(own[k++] = strdup("GIT_OPTIONAL_LOCKS=0")) || !(own[k++] = strdup("LC_ALL=C"))) {
		for (int i = 0; i < k; i++)
			free(own[i]);
		free(env);
		return NULL;
	}
	memcpy(env + n, own, 8 * sizeof(char *));
	return env;
}

static void first_line(const char *s, char *why, size_t wn, const char *fallback)
{
	size_t n = s ? strcspn(s, "\n") : 0;
	snprintf(why, wn, "%.*s", (int)(n ? n : strlen(fallback)), n ? s : fallback);
}

/* argv: git_bin, then the settings that keep a read of the user's repository from
 * running anything of theirs (no fsmonitor hook) or changing it (no gc), then args. */
static const char **git_argv(const char *const *args)
{
	static const char *const pre[] = {"-c", "core.fsmonitor=false", "-c", "gc.auto=0",
					  "-c", "core.quotepath=false", NULL};
	size_t nargs = 0, n = 0;
	while (args[nargs])
		nargs++;
	const char **argv = calloc(nargs + 8, sizeof(char *));
	if (!argv)
		return NULL;
	argv[n++] = git_bin;
	for (int i = 0; pre[i]; i++)
		argv[n++] = pre[i];
	for (size_t i = 0; i < nargs; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	return argv;
}

/* p's stdout once it ran with status rc (malloc'd; *len its bytes), or NULL with why:
 * its stderr's first line, or what went wrong. */
static char *output_of(struct proc *p, int rc, size_t *len, char *why, size_t wn)
{
	char *text = sbuf_take(&p->out, len);
	if (rc == 0 && text)
		return text;
	p->err[p->errlen] = 0;
	first_line(p->err, why, wn, !git_bin[0] ? "git is not installed"
				    : !text ? "out of memory" : "git failed");
	free(text);
	return NULL;
}

int git_run(const struct git_repo *r, const char *index, const char *const *args,
	    const char *in, size_t inlen, char **out, size_t *outlen, char *why, size_t wn)
{
	const char **argv = git_argv(args);
	if (!argv) {
		snprintf(why, wn, "out of memory");
		return -1;
	}
	char *own[8] = {0};
	char **env = git_bin[0] ? make_env(r, index, own) : NULL;
	struct proc p = {.cwd = r->top, .argv = (char *const *)argv, .envp = env, .in = in,
			 .inlen = in ? inlen : 0};
	int rc = env ? run(&p) : -1;
	free(env);
	free(argv);
	for (int i = 0; i < 8; i++)
		free(own[i]);
	size_t len = 0;
	char *text = output_of(&p, rc, &len, why, wn);
	if (!text)
		return -1;
	if (out)
		*out = text;
	else
		free(text);
	if (outlen)
		*outlen = len;
	return 0;
}

int git_ignored(const char *dir, char **out, size_t *outlen, char *why, size_t wn)
{
	static const char *const args[] = {"ls-files", "-z", "--others", "--ignored",
					   "--exclude-standard", "--directory", NULL};
	const char **argv = git_bin[0] && base_env ? git_argv(args) : NULL;
	struct proc p = {.cwd = dir, .argv = (char *const *)argv, .envp = base_env};
	int rc = argv ? run(&p) : -1;
	free(argv);
	size_t len = 0;
	char *text = output_of(&p, rc, &len, why, wn);
	if (!text)
		return -1;
	*out = text;
	*outlen = len;
	return 0;
}

int git_discover(const char *dir, struct git_repo *r)
{
	static const char *const args[] = {"rev-parse", "--show-toplevel", "--absolute-git-dir",
					   NULL};
	const char *argv[8] = {git_bin};
	for (int i = 0; args[i]; i++)
		argv[i + 1] = args[i];
	struct proc p = {.cwd = dir, .argv = (char *const *)argv, .envp = base_env};
	memset(r, 0, sizeof(*r));
	int rc = git_bin[0] && base_env ? run(&p) : -1;
	char *text = sbuf_take(&p.out, NULL);
	char *nl = text ? strchr(text, '\n') : NULL;
	if (rc == 0 && nl && nl > text && nl[1] == '/') {
		*nl = 0;
		snprintf(r->top, sizeof(r->top), "%s", text);
		snprintf(r->gitdir, sizeof(r->gitdir), "%.*s", (int)strcspn(nl + 1, "\n"), nl + 1);
	}
	free(text);
	return r->top[0] == '/' && r->gitdir[0] == '/' ? 0 : -1;
}
