/* The bash tool: one shell command per call (bash.c runs it) on a worker, in a working
 * directory inside the session's, with the gateway's environment minus its secrets.
 * Its output streams to clients as tool_progress while it runs; an abort wakes the
 * worker through the job's eventfd, and the command's whole process group is killed. */
#include "bash.h"
#include "outcap.h"
#include "ws.h"

#include <errno.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>

#define PROGRESS_MS 250
#define PROGRESS_BYTES 8192 /* the output's tail sent with each progress */

/* The first line of the command, at most 80 bytes, for titles. */
static void short_command(const char *cmd, char *out, size_t n)
{
	size_t len = strcspn(cmd, "\n");
	snprintf(out, n, "%.*s%s", (int)(len > 80 ? 80 : len), cmd,
		 len > 80 || cmd[len] ? " ..." : "");
}

static int bash_parse(struct ws_job *j, const cJSON *in, char *why, size_t wn)
{
	const char *cmd, *workdir, *desc;
	struct stat st;
	if (ws_in_str(in, "command", 1, &cmd, why, wn) ||
	    ws_in_int(in, "timeout", WS.timeout_ms, 1, &j->num1, why, wn) ||
	    ws_in_str(in, "workdir", 0, &workdir, why, wn) ||
	    ws_in_str(in, "description", 0, &desc, why, wn))
		return -1;
	if (!*cmd) {
		snprintf(why, wn, "the parameter \"command\" is empty");
		return -1;
	}
	if (j->num1 > WS.max_timeout_ms)
		j->num1 = WS.max_timeout_ms; /* what the description promises: at most that */
	if (ws_resolve(j, workdir, why, wn))
		return -1;
	if (stat(j->path, &st) || !S_ISDIR(st.st_mode)) {
		snprintf(why, wn, "workdir \"%s\" is not a folder%s", workdir ? workdir : j->rel,
			 errno == ENOENT ? " (it does not exist)" : "");
		return -1;
	}
	j->arg = strdup(cmd);
	j->arg2 = desc && *desc ? strdup(desc) : NULL;
	j->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!j->arg || (desc && *desc && !j->arg2) || j->cancel_fd < 0) {
		snprintf(why, wn, "cannot prepare the command: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static void bash_ask(struct ws_job *j, struct ws_ask *a)
{
	char s[128];
	short_command(j->arg, s, sizeof(s));
	ws_ask_fill(a, "bash", j->arg,
		    ws_meta("s", "command", j->arg, "s", "description", j->arg2, "s", "workdir", j->rel,
			    NULL),
		    "Run: %s", s);
}

static const char *title_of(struct ws_job *j, char *buf, size_t n)
{
	if (j->arg2)
		return j->arg2;
	short_command(j->arg, buf, n);
	return buf;
}

/* Worker, throttled by bash.c: the output so far, for clients. */
static void progress(void *arg, const struct outcap *out)
{
	struct ws_job *j = arg;
	char title[128], *tail = outcap_tail(out, PROGRESS_BYTES);
	char *meta = tail ? ws_meta("s", "output", tail, "s", "description", j->arg2, NULL) : NULL;
	if (meta)
		WS.host->tool_progress(WS.self, j->id, title_of(j, title, sizeof(title)), meta);
	free(tail);
	free(meta);
}

/* "<output>\n\n[exit code N]" as the model reads it. */
static char *result_text(const struct bash_result *r)
{
	char tail[96] = "", *text = NULL;
	size_t len = strlen(r->output);
	const char *gap = len && r->output[len - 1] == '\n' ? "\n" : "\n\n";
	if (r->signal)
		snprintf(tail, sizeof(tail), "%s[killed by signal %d (%s)]", gap, r->signal,
			 strsignal(r->signal));
	else if (r->exit_code)
		snprintf(tail, sizeof(tail), "%s[exit code %d]", gap, r->exit_code);
	if (asprintf(&text, "%s%s", *r->output ? r->output : "(no output)", tail) < 0)
		return NULL;
	return text;
}

static void bash_act(struct ws_job *j)
{
	char title[128];
	struct bash_spec spec = {
		.shell = WS.shell, .command = j->arg, .cwd = j->path, .envp = WS.envp,
		.timeout_ms = j->num1, .grace_ms = WS.grace_ms, .max_output = (size_t)WS.max_output,
		.cancelled = &j->cancelled, .cancel_fd = j->cancel_fd,
		.progress_ms = PROGRESS_MS, .progress = progress, .arg = j};
	struct bash_result r;
	if (bash_exec(&spec, &r)) {
		ws_fail(j, "%s", r.error);
		return;
	}
	char *text = r.output ? result_text(&r) : NULL;
	char *meta = ws_meta("s", "output", r.output, "i", "exit", (int64_t)r.exit_code, "s",
			     "description", j->arg2, "b", "truncated", r.truncated, NULL);
	if (!text)
		ws_fail(j, "out of memory");
	else if (r.cancelled)
		ws_fail(j, "cancelled: the command and every process it started were stopped");
	else if (r.timed_out) /* the status is the kill's: not worth showing */
		ws_fail(j, "Command timed out after %lld ms: it and every process it started were "
			"stopped. Output so far:\n%s", (long long)j->num1,
			*r.output ? r.output : "(none)");
	else
		ws_done(j, text, title_of(j, title, sizeof(title)), meta);
	free(text);
	free(meta);
	free(r.output);
}

const struct ws_tool ws_bash = {
	.name = "bash",
	.description =
		"Run a shell command (/bin/sh -c) in the session's working directory, or in "
		"workdir (relative to it, and inside it). Its output, stdout and stderr "
		"together, is returned; a non-zero exit status is reported after it.\n"
		"- timeout: milliseconds before the command is stopped (default 120000, two "
		"minutes; at most 600000). On a timeout, or when the user aborts, the command "
		"and every process it started are killed.\n"
		"- Output over 30 KB is cut in the middle: you get its beginning and its end. "
		"Filter long output yourself (grep, tail) when you need one part of it.\n"
		"- There is no terminal and no input: a command that prompts (an editor, a pager, "
		"an interactive rebase, a password) waits until the timeout. Use non-interactive "
		"flags (-y, --no-edit, GIT_PAGER=cat).\n"
		"- Every call starts a fresh shell: cd and variables do not carry over. Use "
		"workdir rather than `cd dir && ...`. Chain commands that depend on each other "
		"with &&; make independent commands separate calls in the same turn.\n"
		"- A process started in the background (cmd &) keeps running after the call, but "
		"its output is no longer read: redirect it to a file.\n"
		"- To read, search, list or change files use read, grep, glob, list, edit and "
		"write rather than cat, grep, find, ls, sed or echo.\n"
		"- description: what the command does in 5-10 words, shown to the user (\"Run "
		"the unit tests\").\n"
		"- The command may need the user's approval; if it is refused, the call fails with "
		"the user's reason. Provider API keys and the gateway's token are not in its "
		"environment.",
	.parameters =
		"{\"type\":\"object\",\"properties\":{"
		"\"command\":{\"type\":\"string\",\"description\":\"The command to run\"},"
		"\"timeout\":{\"type\":\"integer\",\"description\":\"Timeout in milliseconds "
		"(default 120000, at most 600000)\"},"
		"\"workdir\":{\"type\":\"string\",\"description\":\"The folder to run it in, relative "
		"to the working directory (default: the working directory). Use it instead of "
		"cd\"},"
		"\"description\":{\"type\":\"string\",\"description\":\"What the command does, in "
		"5-10 words\"}},\"required\":[\"command\"]}",
	.parse = bash_parse, .ask = bash_ask, .act = bash_act,
	.writes = 1,
};
