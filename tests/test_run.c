/* `agentgate run` as a user runs it: the real binary, its exit status, its stderr on
 * bad input, and its NDJSON parsed line by line against the documented shape. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include "cmd_config.h"
#include "config.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[128];
static char *out, *errs;
static int merged; /* agentgate() sends stderr where stdout goes (2>&1): all in out */

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return strdup("");
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *b = calloc(1, (size_t)n + 1);
	if (fread(b, 1, (size_t)n, f) != (size_t)n)
		b[0] = 0;
	fclose(f);
	return b;
}

/* Runs agentgate with the given arguments (NULL-terminated); returns the exit status. */
static int agentgate(const char *first, ...)
{
	const char *argv[32] = {AGENTGATE_BIN, first};
	int n = 2;
	va_list ap;
	va_start(ap, first);
	const char *a;
	while (n < 31 && (a = va_arg(ap, const char *)))
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	char o[200], e[200];
	snprintf(o, sizeof(o), "%s/stdout", dir);
	snprintf(e, sizeof(e), "%s/stderr", dir);
	pid_t pid = fork();
	if (pid == 0) {
		if (!freopen(o, "w", stdout) || !freopen(e, "w", stderr) ||
		    (merged && dup2(fileno(stdout), 2) < 0))
			_exit(99);
		alarm(60); /* bounded: a `serve` that should have refused to start is killed */
		execv(argv[0], (char *const *)argv);
		_exit(98);
	}
	int st;
	waitpid(pid, &st, 0);
	free(out);
	free(errs);
	out = slurp(o);
	errs = slurp(e);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/agentgate-run-XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static char *data_dir(void)
{
	static char d[200];
	snprintf(d, sizeof(d), "%s/data", dir);
	return d;
}

static char *write_config(const char *name, const char *text)
{
	static char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	return path;
}

static void usage_errors_exit_2_and_name_the_problem(void **state)
{
	assert_int_equal(agentgate("run", "--bogus", "hi", NULL), 2);
	assert_non_null(strstr(errs, "--bogus"));
	assert_int_equal(agentgate("launch", NULL), 2);
	assert_non_null(strstr(errs, "launch"));
	assert_int_equal(agentgate("run", "--format", "yaml", "hi", NULL), 2);
	assert_non_null(strstr(errs, "yaml"));
	assert_int_equal(agentgate("run", NULL), 2);
	assert_non_null(strstr(errs, "prompt"));
	assert_int_equal(agentgate("run", "--data", data_dir(), "--model", "nosuch/thing", "hi", NULL), 2);
	assert_non_null(strstr(errs, "nosuch"));
	assert_int_equal(agentgate("run", "--data", data_dir(), "--model", "scripted/gpt9", "hi", NULL), 2);
	assert_non_null(strstr(errs, "scripted/gpt9"));
	assert_int_equal(agentgate("run", "--data", data_dir(), "--session", "ses_missing", "hi", NULL), 2);
	assert_non_null(strstr(errs, "ses_missing"));
	assert_int_equal(agentgate("run", "--data", data_dir(), "--config", "/nonexistent/agentgate.json",
				   "hi", NULL), 2);
	assert_non_null(strstr(errs, "/nonexistent/agentgate.json"));
	assert_int_equal(agentgate("run", "--data", data_dir(), "--agent", "nobody", "hi", NULL), 2);
	assert_non_null(strstr(errs, "nobody"));
	assert_int_equal(agentgate("run", "--stall-timeout-ms", "soon", "hi", NULL), 2);
	assert_non_null(strstr(errs, "soon"));
	assert_int_equal(agentgate("run", "--port", "1", "hi", NULL), 2);
	assert_non_null(strstr(errs, "--port"));
}

static void config_that_is_not_json_is_named(void **state)
{
	char cfg[200];
	snprintf(cfg, sizeof(cfg), "%s/bad.json", dir);
	FILE *f = fopen(cfg, "w");
	fputs("{\"model\": ", f);
	fclose(f);
	assert_int_equal(agentgate("run", "--data", data_dir(), "--config", cfg, "hi", NULL), 2);
	assert_non_null(strstr(errs, cfg));
}

static void default_format_prints_the_reply(void **state)
{
	assert_int_equal(agentgate("run", "--data", data_dir(), "echo", "round", "trip", NULL), 0);
	assert_non_null(strstr(out, "The echo tool returned: round trip"));
	assert_non_null(strstr(out, "| echo completed"));
}

static const char *str(const cJSON *o, const char *k)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
}

/* Every line parses and has the OpenCode run shape; returns the sequence of types. */
static void check_lines(char *types, size_t n, const char **session)
{
	types[0] = 0;
	for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
		cJSON *j = cJSON_Parse(line);
		if (!j)
			fail_msg("line is not JSON: %s", line);
		const char *type = str(j, "type");
		assert_non_null(type);
		assert_true(cJSON_IsNumber(cJSON_GetObjectItem(j, "timestamp")));
		assert_non_null(str(j, "sessionID"));
		assert_non_null(str(j, "rootID"));
		if (!*session)
			*session = strdup(str(j, "sessionID"));
		assert_string_equal(str(j, "sessionID"), *session);
		if (!strcmp(type, "subtask_delta")) {
			assert_non_null(str(j, "childSessionID"));
			assert_non_null(str(j, "partID"));
			assert_non_null(str(j, "delta"));
			assert_non_null(str(j, "parentID"));
		} else if (strcmp(type, "error")) {
			const cJSON *part = cJSON_GetObjectItem(j, "part");
			assert_true(cJSON_IsObject(part));
			assert_non_null(str(part, "id"));
			assert_non_null(str(part, "messageID"));
			if (!strcmp(type, "subtask_event")) {
				assert_string_equal(str(part, "sessionID"), str(j, "childSessionID"));
				assert_non_null(str(j, "parentToolCallID"));
			} else {
				assert_string_equal(str(part, "sessionID"), *session);
			}
		} else {
			assert_true(cJSON_IsObject(cJSON_GetObjectItem(j, "error")));
		}
		strncat(types, type, n - strlen(types) - 2);
		strcat(types, " ");
		cJSON_Delete(j);
	}
}

static void json_format_is_ndjson_of_the_documented_shape(void **state)
{
	assert_int_equal(agentgate("run", "--data", data_dir(), "--format", "json", "echo hi", NULL), 0);
	char types[1024];
	const char *sid = NULL;
	check_lines(types, sizeof(types), &sid);
	assert_string_equal(types, "step_start text step_finish tool_use step_start text step_finish ");
	/* --session continues the same session */
	char *keep = strdup(sid);
	free((char *)sid);
	sid = keep;
	assert_int_equal(agentgate("run", "--data", data_dir(), "--format", "json", "--session", keep,
				   "hello", NULL), 0);
	check_lines(types, sizeof(types), &sid);
	assert_string_equal(types, "step_start text step_finish ");
	free(keep);
}

static void a_failed_turn_exits_1_with_an_error_line(void **state)
{
	assert_int_equal(agentgate("run", "--data", data_dir(), "--format", "json", "fail", NULL), 1);
	char types[1024];
	const char *sid = NULL;
	check_lines(types, sizeof(types), &sid);
	assert_non_null(strstr(types, "error"));
	free((char *)sid);
	assert_int_equal(agentgate("run", "--data", data_dir(), "fail", NULL), 1);
	assert_non_null(strstr(errs, "scripted failure"));
}

/* The lines of out (modified in place) that are neither a log record nor the reply's. */
static void no_line_mixes_reply_and_log(const char *reply_start)
{
	int reply_lines = 0;
	for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
		int is_log = strlen(line) > 24 && line[4] == '-' && line[10] == 'T' && line[23] == 'Z';
		int is_error = !strncmp(line, "error: ", 7);
		int is_reply = !strncmp(line, reply_start, strlen(reply_start));
		if (!is_log && !is_error && !is_reply)
			fail_msg("a line that is neither the reply, a log record nor an error: \"%s\"", line);
		if (is_reply && (strstr(line, "WARN") || strstr(line, "error:")))
			fail_msg("a log or error line inside the reply's: \"%s\"", line);
		reply_lines += is_reply;
	}
	assert_int_equal(reply_lines, 1);
}

static int unmerge(void **state)
{
	merged = 0;
	return 0;
}

static void run_keeps_logs_and_errors_off_the_replys_line(void **state)
{
	char *cfg = write_config("midline.json",
		"{\"retry\": {\"max\": 1, \"base_ms\": 20}, \"providers\": {\"scripted\": "
		"{\"pace_ms\": 1, \"rules\": ["
		"{\"match\": \"flaky\", \"steps\": [{\"text\": \"Partial answer\", \"error\": "
		"{\"status\": 500, \"message\": \"boom\"}}]},"
		"{\"match\": \"halt\", \"steps\": [{\"text\": \"Half a reply\", \"error\": "
		"{\"status\": 400, \"message\": \"refused\"}}]}]}}}");
	merged = 1; /* 2>&1: one file */
	/* a retry's WARN record comes while the reply's line is open, then the error */
	int rc = agentgate("run", "--data", data_dir(), "--config", cfg, "flaky", NULL);
	assert_int_equal(rc, 1);
	char *whole = strdup(out);
	if (!strstr(whole, "Partial answer\n") || !strstr(whole, "Z WARN  session ") ||
	    !strstr(whole, "\nerror: boom\n"))
		fail_msg("2>&1 output: %s", whole);
	no_line_mixes_reply_and_log("Partial answer");
	free(whole);
	/* an error with no log before it still starts a line of its own */
	rc = agentgate("run", "--data", data_dir(), "--config", cfg, "halt", NULL);
	assert_int_equal(rc, 1);
	if (strncmp(out, "Half a reply\nerror: refused\n", 30))
		fail_msg("2>&1 output: %s", out);
	merged = 0;
	/* apart, the reply is untouched by the log: no line break added to it */
	assert_int_equal(agentgate("run", "--data", data_dir(), "--config", cfg, "flaky", NULL), 1);
	assert_string_equal(out, "Partial answer\n");
	assert_non_null(strstr(errs, "WARN  session "));
	assert_non_null(strstr(errs, "error: boom\n"));
}

static void stall_timeout_flag_bounds_a_stalled_stream(void **state)
{
	assert_int_equal(agentgate("run", "--data", data_dir(), "--stall-timeout-ms", "200", "--format",
				   "json", "stall", NULL), 1);
	assert_non_null(strstr(out, "LLM stream stalled"));
	assert_non_null(strstr(out, "200 ms"));
}

static void child_activity_streams_before_the_task_completes(void **state)
{
	assert_int_equal(agentgate("run", "--data", data_dir(), "--format", "json",
				   "task echo from below", NULL), 0);
	char *task_done = strstr(out, "\"type\":\"tool_use\"");
	char *first_delta = strstr(out, "\"type\":\"subtask_delta\"");
	char *child_tool = strstr(out, "\"tool\":\"echo\"");
	assert_non_null(task_done);
	assert_non_null(first_delta);
	assert_non_null(child_tool);
	assert_true(first_delta < task_done);
	assert_true(child_tool < task_done);
	assert_non_null(strstr(out, "The subagent reported: The echo tool returned: from below"));
	char types[8192];
	const char *sid = NULL;
	check_lines(types, sizeof(types), &sid);
	assert_non_null(strstr(types, "subtask_event"));
	free((char *)sid);
	/* the default format shows an indented line per child step */
	assert_int_equal(agentgate("run", "--data", data_dir(), "task echo again", NULL), 0);
	assert_non_null(strstr(out, "\n  | ses_"));
	assert_non_null(strstr(out, "The subagent reported: The echo tool returned: again"));
}

/* A port nothing listens on now (the kernel's choice for an ephemeral bind). */
static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
	close(fd);
	return ntohs(a.sin_port);
}

static pid_t server; /* a server a test started: killed by the teardown if it failed */

static int kill_server(void **state)
{
	if (server > 0) {
		kill(server, SIGKILL);
		waitpid(server, NULL, 0);
		server = 0;
	}
	return 0;
}

/* Starts `agentgate serve` on data_dir() (with --config config when not NULL, its stderr
 * to log, else /dev/null) and waits (bounded) until it owns the data directory. */
static pid_t start_server_with(int port, const char *config, const char *log)
{
	char ps[16], lock[256];
	snprintf(ps, sizeof(ps), "%d", port);
	snprintf(lock, sizeof(lock), "%s/agentgate.lock", data_dir());
	pid_t pid = fork();
	if (pid == 0) {
		if (!freopen(log ? log : "/dev/null", "w", stderr))
			_exit(99);
		execl(AGENTGATE_BIN, AGENTGATE_BIN, "serve", "--data", data_dir(), "--port", ps,
		      config ? "--config" : (char *)NULL, config, (char *)NULL);
		_exit(98);
	}
	/* its own pid: the file may still hold an earlier owner's line (a `run` that
	 * ended), which says nothing about this server */
	char mine[32], *owner = NULL;
	snprintf(mine, sizeof(mine), "pid %d\n", (int)pid);
	server = pid;
	for (int i = 0; i < 1000 && !(owner && strstr(owner, mine)); i++) {
		free(owner);
		usleep(10000);
		owner = slurp(lock);
	}
	assert_non_null(strstr(owner, mine));
	free(owner);
	return pid;
}

static pid_t start_server(int port)
{
	return start_server_with(port, NULL, NULL);
}

static void a_second_owner_of_a_data_directory_is_refused_naming_the_first(void **state)
{
	int port = free_port();
	pid_t srv = start_server(port);
	char url[64], pid[32];
	snprintf(url, sizeof(url), "agentgate serve at http://127.0.0.1:%d", port);
	snprintf(pid, sizeof(pid), "pid %d", (int)srv);
	/* `run` beside a server would recover the server's running turns as interrupted
	 * and answer its prompts: it is refused before it touches anything */
	assert_int_equal(agentgate("run", "--data", data_dir(), "echo", "beside", NULL), 2);
	assert_non_null(strstr(errs, data_dir()));
	assert_non_null(strstr(errs, url));
	assert_non_null(strstr(errs, pid));
	char ps[16];
	snprintf(ps, sizeof(ps), "%d", free_port());
	assert_int_equal(agentgate("serve", "--data", data_dir(), "--port", ps, NULL), 2);
	assert_non_null(strstr(errs, url));
	/* a lock left by a killed owner is no obstacle */
	kill_server(NULL);
	assert_int_equal(agentgate("run", "--data", data_dir(), "echo", "after", NULL), 0);
	assert_non_null(strstr(out, "The echo tool returned: after"));
	assert_int_equal(agentgate("run", "--data", data_dir(), "echo", "again", NULL), 0);
}

/* ---- what serve refuses at start-up ---- */

/* serve exits non-zero at once, naming what it could not use and the OS's reason. */
static void serve_refuses(const char *what, const char *reason, const char *first, ...)
{
	const char *argv[12] = {0};
	int n = 0;
	va_list ap;
	va_start(ap, first);
	for (const char *a = first; a && n < 11; a = va_arg(ap, const char *))
		argv[n++] = a;
	va_end(ap);
	int rc = agentgate("serve", argv[0], argv[1], argv[2], argv[3], argv[4], argv[5], argv[6],
			   argv[7], argv[8], argv[9], argv[10], NULL);
	if (rc == 0 || rc >= 128 || !strstr(errs, what) || (reason && !strstr(errs, reason)))
		fail_msg("serve %s: exit %d, stderr \"%s\" (expected it to name \"%s\" and \"%s\")",
			 argv[0], rc, errs, what, reason ? reason : "");
	assert_null(strstr(errs, "listening"));
}

static void serve_refuses_an_address_a_port_or_a_data_dir_it_cannot_use(void **state)
{
	char ps[16], data[256];
	snprintf(ps, sizeof(ps), "%d", free_port());
	/* an address no interface has, a name that does not resolve */
	serve_refuses("10.255.255.1", strerror(EADDRNOTAVAIL), "--host", "10.255.255.1",
		      "--port", ps, "--data", data_dir(), "--token", "t", NULL);
	serve_refuses("no-such-host.invalid", NULL, "--host", "no-such-host.invalid", "--port", ps,
		      "--data", data_dir(), "--token", "t", NULL);
	/* a port another socket listens on */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 1), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
	char busy[16], where[64];
	snprintf(busy, sizeof(busy), "%d", ntohs(a.sin_port));
	snprintf(where, sizeof(where), "127.0.0.1:%s", busy);
	serve_refuses(where, strerror(EADDRINUSE), "--port", busy, "--data", data_dir(), NULL);
	close(fd);
	/* a data directory that is a file, under a missing parent, or one the store cannot
	 * use (its database's path is a directory) */
	snprintf(data, sizeof(data), "%s/a-file", dir);
	FILE *f = fopen(data, "w");
	assert_non_null(f);
	fclose(f);
	serve_refuses(data, strerror(ENOTDIR), "--port", ps, "--data", data, NULL);
	snprintf(data, sizeof(data), "%s/missing/data", dir);
	serve_refuses(data, strerror(ENOENT), "--port", ps, "--data", data, NULL);
	snprintf(data, sizeof(data), "%s/db-is-a-dir", dir);
	char db[300];
	snprintf(db, sizeof(db), "%s/agentgate.db", data);
	assert_int_equal(mkdir(data, 0700), 0);
	assert_int_equal(mkdir(db, 0700), 0);
	serve_refuses(db, strerror(EISDIR), "--port", ps, "--data", data, NULL);
	if (geteuid() != 0) { /* root writes where the mode says it may not */
		snprintf(data, sizeof(data), "%s/read-only", dir);
		assert_int_equal(mkdir(data, 0500), 0);
		serve_refuses(data, strerror(EACCES), "--port", ps, "--data", data, NULL);
	}
}

static void each_command_prints_its_usage_with_help(void **state)
{
	static const char *const cmds[] = {"serve", "run", "attach", "config", "models"};
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		char synopsis[64];
		snprintf(synopsis, sizeof(synopsis), "usage:\n  agentgate %s ", cmds[i]);
		const char *flags[] = {"--help", "-h"};
		for (int f = 0; f < 2; f++) {
			if (agentgate(cmds[i], flags[f], NULL) != 0 || strncmp(out, synopsis, strlen(synopsis)))
				fail_msg("agentgate %s %s printed \"%s\" / \"%s\"", cmds[i], flags[f], out, errs);
			assert_string_equal(errs, "");
			/* that command's usage, not the overview */
			for (size_t j = 0; j < sizeof(cmds) / sizeof(cmds[0]); j++) {
				char other[64];
				snprintf(other, sizeof(other), "agentgate %s ", cmds[j]);
				assert_true((strstr(out, other) != NULL) == (i == j));
			}
		}
	}
	/* with other flags and words around it; and as `agentgate help run` */
	assert_int_equal(agentgate("run", "--data", data_dir(), "--help", "some", "prompt", NULL), 0);
	assert_non_null(strstr(out, "--format default|json"));
	assert_int_equal(agentgate("help", "run", NULL), 0);
	assert_non_null(strstr(out, "usage:\n  agentgate run "));
	assert_int_equal(agentgate("serve", "--port", "0", "--data", data_dir(), "-h", NULL), 0);
	assert_non_null(strstr(out, "--host ADDR"));
	/* a usage error shows the command's own usage */
	assert_int_equal(agentgate("attach", "--bogus", NULL), 2);
	assert_non_null(strstr(errs, "see agentgate attach --help"));
	assert_null(strstr(errs, "agentgate serve "));
}

/* ---- agentgate config, --version ---- */

static void config_check_names_each_problem(void **state)
{
	char *bad = write_config("bad.json",
		"// comments are allowed\n{\"model\": \"scripted/demo\",\n"
		" \"retry\": {\"max\": \"3\", \"cap_msx\": 5},\n"
		" \"agent\": {\"build\": {\"maxSteps\": 10, \"temperature\": 0.2}},\n"
		" \"plugins\": [{\"path\": \"x.so\"}, {\"path\": \"y.so\", \"requird\": true}]}");
	assert_int_equal(agentgate("config", "check", bad, NULL), 1);
	assert_non_null(strstr(out, "\"retry.max\" must be a number (it is a string)"));
	assert_non_null(strstr(out, "unknown key \"retry.cap_msx\""));
	assert_non_null(strstr(out, "unknown key \"agent.build.temperature\""));
	assert_non_null(strstr(out, "unknown key \"plugins[1].requird\""));
	assert_non_null(strstr(out, "4 problems"));
	/* the types are right: the gateway's own readers say what is wrong with the values */
	static const struct {
		const char *text, *says;
	} values[] = {
		{"{\"limits\": {\"max_output_bytes\": 0}}",
		 "\"limits.max_output_bytes\" must be an integer from 1"},
		{"{\"model\": \"nope/x\"}", "unknown provider \"nope\""},
		{"{\"server\": {\"allowed_hosts\": [\"\"]}}", "server.allowed_hosts"},
		{"{\"agent\": {\"x\": {\"permission\": {\"bash\": \"maybe\"}}}}",
		 "agent x: \"permission\": \"bash\" must be"},
		{"{\"workspace\": \"/nonexistent/dir\"}", "/nonexistent/dir"},
		{"{\"command\": {\"x\": {}}}", "command.x.template is missing"},
		{"{\"command\": {\"x\": {\"template\": \"t\", \"agent\": \"nope\"}}}",
		 "command.x.agent: there is no agent \"nope\""},
		{"{\"command\": {\"x\": {\"template\": \"t\", \"model\": \"m\"}}}",
		 "command.x.model \"m\" must be PROVIDER/MODEL"},
	};
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		bad = write_config("values.json", values[i].text);
		assert_int_equal(agentgate("config", "check", bad, NULL), 1);
		if (!strstr(out, values[i].says))
			fail_msg("config check of %s: \"%s\" not in %s", values[i].text, values[i].says, out);
	}
	bad = write_config("syntax.json", "{\"model\": ");
	assert_int_equal(agentgate("config", "check", bad, NULL), 1);
	assert_non_null(strstr(out, "not a JSON object"));
	assert_int_equal(agentgate("config", "check", "/nonexistent.json", NULL), 1);
	assert_non_null(strstr(errs, "/nonexistent.json"));
	assert_int_equal(agentgate("config", "lint", NULL), 2);
	/* a good one, comments and all, and the installed default */
	assert_int_equal(agentgate("config", "check", SOURCE_DIR "/contrib/agentgate.sample.json", NULL), 0);
	assert_non_null(strstr(out, ": ok"));
	assert_int_equal(agentgate("config", "check", SOURCE_DIR "/contrib/agentgate.json", NULL), 0);
	/* and the gateway reads such a file */
	char *commented = write_config("commented.json", "{ /* paced */ \"providers\": {\"scripted\": "
				       "{\"pace_ms\": 1}} // the demo\n}");
	assert_int_equal(agentgate("run", "--data", data_dir(), "--config", commented, "echo c", NULL), 0);
}

static void unknown_config_keys_are_warned_with_their_path_when_serve_and_run_start(void **state)
{
	static const char *const unknown[] = {"\"retry.cap_msx\"", "\"agent.build.temperature\"",
					      "\"plugins[0].requird\""};
	char *cfg = write_config("unknown.json",
		"{\"retry\": {\"cap_msx\": 5}, \"providers\": {\"scripted\": {\"pace_ms\": 1}},\n"
		" \"agent\": {\"build\": {\"maxSteps\": 10, \"temperature\": 0.2}},\n"
		" \"plugins\": [{\"path\": \"none.so\", \"requird\": true}]}");
	/* run: a warning line per key on stderr, and the run goes on */
	assert_int_equal(agentgate("run", "--data", data_dir(), "--config", cfg, "echo warned", NULL), 0);
	assert_non_null(strstr(out, "The echo tool returned: warned"));
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		char line[400];
		snprintf(line, sizeof(line), "WARN  config %s: unknown key %s", cfg, unknown[i]);
		if (!strstr(errs, line))
			fail_msg("run: no \"%s\" in stderr: %s", line, errs);
	}
	assert_null(strstr(errs, "\"retry\""));    /* known keys are not named */
	assert_null(strstr(errs, "maxSteps"));
	/* serve, the same before it listens */
	char log[256];
	snprintf(log, sizeof(log), "%s/serve.log", dir);
	start_server_with(free_port(), cfg, log);
	char *said = slurp(log);
	kill_server(NULL);
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++)
		if (!strstr(said, unknown[i]) || !strstr(said, "unknown key"))
			fail_msg("serve: no warning for %s in: %s", unknown[i], said);
	free(said);
	/* a value of the wrong type is still an error that stops it */
	cfg = write_config("wrongtype.json", "{\"retry\": {\"max\": \"3\", \"zz\": 1}}");
	assert_int_equal(agentgate("run", "--data", data_dir(), "--config", cfg, "hi", NULL), 2);
	assert_non_null(strstr(errs, "unknown key \"retry.zz\""));
	assert_non_null(strstr(errs, "\"max\" must be"));
}

static void a_missing_provider_key_is_named_before_the_first_request(void **state)
{
	char *cfg = write_config("keys.json", "{\"retry\": {\"max\": 0}, \"agent\": {\"helper\": "
				 "{\"mode\": \"subagent\", \"model\": \"anthropic/claude-x\"}}}");
	char base[64];
	snprintf(base, sizeof(base), "http://127.0.0.1:%d/v1", free_port()); /* nobody there */
	unsetenv("OPENAI_API_KEY");
	unsetenv("ANTHROPIC_API_KEY");
	assert_int_equal(agentgate("run", "--data", data_dir(), "--config", cfg, "--model",
				   "openai/gpt-x", "--openai-base-url", base, "hi", NULL), 1);
	char *warned = strstr(errs, "WARN  no OPENAI_API_KEY set (nor providers.openai.api_key), "
			      "which openai/gpt-x (the default model) needs");
	char *failed = strstr(errs, "error: connection to the provider failed");
	if (!warned || !failed || warned > failed)
		fail_msg("the missing key is not named before the request: %s", errs);
	assert_non_null(strstr(errs, "no ANTHROPIC_API_KEY set (nor providers.anthropic.api_key), "
			       "which anthropic/claude-x (the model of agent helper)"));
	/* a key from the environment (or the config) silences it; scripted needs none */
	setenv("OPENAI_API_KEY", "sk-from-env", 1);
	assert_int_equal(agentgate("run", "--data", data_dir(), "--config", cfg, "--model",
				   "openai/gpt-x", "--openai-base-url", base, "hi", NULL), 1);
	assert_null(strstr(errs, "OPENAI_API_KEY"));
	assert_non_null(strstr(errs, "no ANTHROPIC_API_KEY set"));
	unsetenv("OPENAI_API_KEY");
	cfg = write_config("keyed.json", "{\"retry\": {\"max\": 0}, \"providers\": {\"openai\": "
			   "{\"api_key\": \"sk-from-config\"}}}");
	assert_int_equal(agentgate("run", "--data", data_dir(), "--config", cfg, "--model",
				   "openai/gpt-x", "--openai-base-url", base, "hi", NULL), 1);
	assert_null(strstr(errs, "API_KEY"));
	assert_int_equal(agentgate("run", "--data", data_dir(), "hi", NULL), 0);
	assert_null(strstr(errs, "API_KEY"));
}

static void sample_paths(const cJSON *v, char *path, size_t cap, char **all, int *n)
{
	size_t len = strlen(path);
	const cJSON *m;
	cJSON_ArrayForEach(m, v) {
		snprintf(path + len, cap - len, cJSON_IsArray(v) ? "[]" : len ? ".%s" : "%s",
			 cJSON_IsArray(v) ? "" : m->string);
		if (*n < 4096)
			all[(*n)++] = strdup(path);
		sample_paths(m, path, cap, all, n);
		path[len] = 0;
	}
}

static void the_sample_config_shows_every_option(void **state)
{
	assert_int_equal(agentgate("config", "keys", NULL), 0);
	char *keys = strdup(out);
	char *text = slurp(SOURCE_DIR "/contrib/agentgate.sample.json");
	cJSON *sample = config_parse(text);
	assert_non_null(sample);
	static char *all[4096];
	int n = 0;
	char path[512] = "";
	sample_paths(sample, path, sizeof(path), all, &n);
	int nkeys = 0;
	for (char *k = strtok(keys, "\n"); k; k = strtok(NULL, "\n"), nkeys++) {
		/* "plugins": [...] is the short form of "plugins": {"load": [...]}, shown so */
		int found = !strncmp(k, "plugins[]", 9);
		for (int i = 0; i < n && !found; i++)
			found = config_key_matches(k, all[i]);
		if (!found)
			fail_msg("contrib/agentgate.sample.json does not show the option %s", k);
	}
	assert_true(nkeys > 50);
	for (int i = 0; i < n; i++)
		free(all[i]);
	cJSON_Delete(sample);
	free(text);
	free(keys);
}

static void version_names_the_abis(void **state)
{
	assert_int_equal(agentgate("--version", NULL), 0);
	assert_non_null(strstr(out, "agentgate " AGENTGATE_VERSION " (plugin ABI 1."));
	assert_non_null(strstr(out, "client library 1."));
}

/* One entry of `agentgate models --format json`'s array, by id; fails when absent. */
static const cJSON *model_entry(const cJSON *list, const char *id)
{
	const cJSON *m;
	cJSON_ArrayForEach(m, list) {
		if (!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(m, "id")), id))
			return m;
	}
	fail_msg("agentgate models: no %s in %s", id, out);
	return NULL;
}

static double num_at(const cJSON *m, const char *obj, const char *k)
{
	const cJSON *o = obj ? cJSON_GetObjectItem(m, obj) : m;
	return cJSON_GetNumberValue(cJSON_GetObjectItem(o, k));
}

static void models_lists_the_catalog_without_a_server(void **state)
{
	char *cfg = write_config("models.json",
		"{\"providers\": {\"scripted\": {\"models\": {\"fast\": {\"name\": \"Fast\", "
		"\"limit\": {\"context\": 8000, \"output\": 500}, \"reasoning\": true, "
		"\"modalities\": {\"input\": [\"text\", \"pdf\"]}, \"cost\": {\"input\": 1.5, "
		"\"output\": 6, \"cache_read\": 0.5}}}}, \"anthropic\": {\"models\": [\"claude-x\"]}}}");
	unsetenv("ANTHROPIC_API_KEY");
	unsetenv("ANTHROPIC_BASE_URL");
	assert_int_equal(agentgate("models", "--config", cfg, NULL), 0);
	assert_non_null(strstr(out, "MODEL"));
	char *line = strstr(out, "scripted/fast");
	assert_non_null(line);
	line[strcspn(line, "\n")] = 0;
	assert_non_null(strstr(line, "Fast"));
	assert_non_null(strstr(line, "8000"));
	assert_non_null(strstr(line, "reasoning,pdf"));
	assert_non_null(strstr(line, "1.5 6 0.5 0"));
	assert_non_null(strstr(line, " yes"));

	assert_int_equal(agentgate("models", "--config", cfg, "--format", "json", "--model",
				   "scripted/fast", NULL), 0);
	cJSON *list = cJSON_Parse(out);
	assert_true(cJSON_IsArray(list));
	const cJSON *fast = model_entry(list, "scripted/fast");
	assert_int_equal((int)num_at(fast, "limit", "context"), 8000);
	assert_int_equal((int)num_at(fast, "limit", "output"), 500);
	assert_true(num_at(fast, "cost", "input") == 1.5);
	assert_true(num_at(fast, "cost", "cache_read") == 0.5);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(fast, "reasoning")));
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(fast, "attachment")));
	const cJSON *in = cJSON_GetObjectItem(cJSON_GetObjectItem(fast, "modalities"), "input");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetArrayItem(in, 1)), "pdf");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(fast, "connected")));
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(fast, "default")));
	const cJSON *demo = model_entry(list, "scripted/demo");
	assert_true(num_at(demo, "limit", "context") > 0);
	const cJSON *claude = model_entry(list, "anthropic/claude-x");
	assert_true(cJSON_IsFalse(cJSON_GetObjectItem(claude, "connected")));
	cJSON_Delete(list);

	/* a key in the environment connects the provider */
	setenv("ANTHROPIC_API_KEY", "sk-test", 1);
	assert_int_equal(agentgate("models", "--config", cfg, "--format", "json", NULL), 0);
	unsetenv("ANTHROPIC_API_KEY");
	list = cJSON_Parse(out);
	claude = model_entry(list, "anthropic/claude-x");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(claude, "connected")));
	assert_null(strstr(out, "sk-test"));
	cJSON_Delete(list);

	assert_int_equal(agentgate("models", "--config", "/nonexistent.json", NULL), 1);
	assert_non_null(strstr(errs, "/nonexistent.json"));
	cfg = write_config("badmodels.json", "{\"providers\": {\"openai\": {\"models\": 3}}}");
	assert_int_equal(agentgate("models", "--config", cfg, NULL), 1);
	assert_non_null(strstr(errs, "providers.openai.models"));
	assert_int_equal(agentgate("models", "--data", "x", NULL), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(usage_errors_exit_2_and_name_the_problem),
		cmocka_unit_test(config_that_is_not_json_is_named),
		cmocka_unit_test(default_format_prints_the_reply),
		cmocka_unit_test(json_format_is_ndjson_of_the_documented_shape),
		cmocka_unit_test(a_failed_turn_exits_1_with_an_error_line),
		cmocka_unit_test_teardown(run_keeps_logs_and_errors_off_the_replys_line, unmerge),
		cmocka_unit_test(stall_timeout_flag_bounds_a_stalled_stream),
		cmocka_unit_test(child_activity_streams_before_the_task_completes),
		cmocka_unit_test_teardown(a_second_owner_of_a_data_directory_is_refused_naming_the_first,
					  kill_server),
		cmocka_unit_test(serve_refuses_an_address_a_port_or_a_data_dir_it_cannot_use),
		cmocka_unit_test(each_command_prints_its_usage_with_help),
		cmocka_unit_test(config_check_names_each_problem),
		cmocka_unit_test_teardown(
			unknown_config_keys_are_warned_with_their_path_when_serve_and_run_start,
			kill_server),
		cmocka_unit_test(a_missing_provider_key_is_named_before_the_first_request),
		cmocka_unit_test(the_sample_config_shows_every_option),
		cmocka_unit_test(version_names_the_abis),
		cmocka_unit_test(models_lists_the_catalog_without_a_server),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
