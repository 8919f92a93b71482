/* bash: runs one shell command for the bash tool, on the calling (worker) thread: the
 * command gets its own process group, /dev/null as stdin, stdout and stderr merged into
 * one capped output (outcap), a working directory and an environment chosen by the
 * caller. A timeout or a cancel ends the whole group — SIGTERM, then SIGKILL after a
 * grace — and waits until no process of it is left alive, so nothing the command
 * started survives it. When the shell exits by itself, processes it left in the
 * background keep running, but their output is no longer read. */
#ifndef WS_BASH_H
#define WS_BASH_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct outcap;

struct bash_spec {
	const char *shell;   /* run as SHELL -c COMMAND; "/bin/sh" when NULL */
	const char *command;
	const char *cwd;     /* an existing directory */
	char *const *envp;   /* the whole environment of the command */
	int64_t timeout_ms;
	int64_t grace_ms;    /* from SIGTERM to SIGKILL */
	size_t max_output;   /* bytes kept (outcap) */
	atomic_int *cancelled; /* may be NULL: set by another thread, then cancel_fd */
	int cancel_fd;       /* readable when cancelled (an eventfd), or -1 */
	int64_t progress_ms; /* at most this often: */
	void (*progress)(void *arg, const struct outcap *out); /* may be NULL */
	void *arg;
};

struct bash_result {
	int exit_code;       /* the shell's exit status, or -1 */
	int signal;          /* the signal that ended the shell, or 0 */
	int timed_out, cancelled;
	int truncated;       /* output bytes were cut */
	uint64_t total;      /* output bytes produced */
	char *output;        /* malloc'd, valid UTF-8 */
	pid_t pgid;          /* the command's process group */
	char error[256];     /* why it could not start (then -1 is returned) */
};

/* 0 when the command ran (whatever its status), -1 when it could not start. Frees
 * nothing of spec; the caller frees result->output. */
int bash_exec(const struct bash_spec *spec, struct bash_result *result);

/* Is any process of group pgid alive (zombies do not count)? */
int bash_group_alive(pid_t pgid);

#endif
