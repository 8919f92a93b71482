/* The first-party plugins' own rules, each .so driven through a fake host table
 * (tests/plugins/fakehost.h): what guard refuses and how it says so, where audit-log
 * rotates, when continuation wakes a session and when it stops, how webhook retries and
 * that its observer never waits on the network, what workspace asks before it acts and
 * that a cancel stops its command. Against the real gateway they are tested end to end
 * in tests/node/firstparty.test.mjs (workspace in tests/node/workspace.test.mjs). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "plugins/fakehost.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int load(const char *name, const char *options)
{
	struct ag_error e = {0};
	char path[512];
	snprintf(path, sizeof(path), "%s/%s.so", PLUGIN_DIR, name);
	int rc = fh_load(path, options, &e);
	if (rc)
		print_error("loading %s: %s\n", name, e.message);
	return rc;
}

/* Loading name with options fails, and the error names what is wrong. */
static void load_fails(const char *name, const char *options, const char *needle)
{
	struct ag_error e = {0};
	char path[512];
	snprintf(path, sizeof(path), "%s/%s.so", PLUGIN_DIR, name);
	assert_int_not_equal(fh_load(path, options, &e), 0);
	if (!strstr(e.message, needle))
		fail_msg("options %s: error \"%s\" does not name %s", options, e.message, needle);
}

static int64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* ---- guard -------------------------------------------------------------------------- */

/* TOOL_BEFORE for tool with input: the hook's result; the reason (if any) in why. */
static int before(const char *tool, const char *input, char *why, size_t n)
{
	struct ag_ctx c = fh_ctx("ses_g", 0);
	struct ag_tool_before tb = {.size = sizeof(tb), .tool = tool, .call_id = "call_1",
				    .input_json = input};
	int rc = fh_hook(AG_HOOK_TOOL_BEFORE, &c, &tb);
	snprintf(why, n, "%s", tb.reason ? tb.reason : "");
	free(tb.reason);
	assert_null(tb.input_out);
	return rc;
}

static void refused(const char *tool, const char *input, const char *pattern)
{
	char why[1024], quoted[160];
	snprintf(quoted, sizeof(quoted), "protected pattern \"%s\"", pattern);
	if (before(tool, input, why, sizeof(why)) != AG_HOOK_REFUSE)
		fail_msg("%s %s was not refused", tool, input);
	if (!strstr(why, quoted))
		fail_msg("%s %s: reason \"%s\" does not name %s", tool, input, why, quoted);
}

static void allowed(const char *tool, const char *input)
{
	char why[1024];
	if (before(tool, input, why, sizeof(why)) != AG_HOOK_CONTINUE)
		fail_msg("%s %s was refused: %s", tool, input, why);
}

static void guard_refuses_protected_paths_naming_the_pattern(void **state)
{
	char why[1024];
	assert_int_equal(load("guard", NULL), 0);
	refused("read", "{\"filePath\":\"/w/app/.env\"}", ".env");
	refused("read", "{\"filePath\":\".env\"}", ".env");
	refused("write", "{\"filePath\":\"certs/server.pem\",\"content\":\"x\"}", "*.pem");
	refused("glob", "{\"pattern\":\"*\",\"path\":\"./.env\"}", ".env");
	refused("multiedit", "{\"edits\":[{\"filePath\":\"a/key.pem\"}]}", "*.pem");
	before("read", "{\"filePath\":\"/w/app/.env\"}", why, sizeof(why));
	assert_string_equal(why, "refused: filePath \"/w/app/.env\" matches the "
			    "protected pattern \".env\"");
	allowed("read", "{\"filePath\":\"src/main.c\"}");
	allowed("read", "{\"filePath\":\"src/.envrc\"}");
	allowed("read", "{\"filePath\":\"pem/readme\"}");
	allowed("echo", "{\"text\":\".env\"}");
	allowed("read", "not json");
	fh_unload();
}

static void guard_reads_every_word_of_a_shell_command(void **state)
{
	char why[1024];
	assert_int_equal(load("guard", NULL), 0);
	refused("bash", "{\"command\":\"cat .env\"}", ".env");
	refused("bash", "{\"command\":\"cd app && cat ./config/.env | head -3\"}", ".env");
	refused("bash", "{\"command\":\"openssl x509 -in 'my cert.pem'\"}", "*.pem");
	refused("bash", "{\"command\":\"tool --config=.env\"}", ".env");
	refused("bash", "{\"command\":\"wc<.env;ls\"}", ".env");
	refused("bash", "{\"command\":\"cat \\\".e\\\"nv\"}", ".env");
	before("bash", "{\"command\":\"cd app && cat ./config/.env | head\"}", why, sizeof(why));
	assert_string_equal(why, "refused: command word \"./config/.env\" matches the "
			    "protected pattern \".env\"");
	allowed("bash", "{\"command\":\"ls -la && echo env\"}");
	allowed("run", "{\"command\":\"cat .env\"}"); /* not a shell tool */
	fh_unload();
}

static void guard_takes_patterns_fields_and_shell_tools_from_options(void **state)
{
	assert_int_equal(load("guard", "{\"patterns\":[\"secrets/*\",\"id_rsa\"],"
			      "\"fields\":[\"file\"],\"shell_tools\":[\"sh\"]}"), 0);
	refused("read", "{\"file\":\"/home/u/secrets/token\"}", "secrets/*");
	refused("read", "{\"file\":\"secrets/a/b\"}", "secrets/*");
	refused("sh", "{\"command\":\"cat ~/.ssh/id_rsa\"}", "id_rsa");
	allowed("read", "{\"filePath\":\"secrets/x\"}");
	allowed("bash", "{\"command\":\"cat id_rsa\"}");
	allowed("read", "{\"file\":\".env\"}");
	fh_unload();
}

static void guard_refuses_bad_options_naming_them(void **state)
{
	load_fails("guard", "{\"patterns\":\".env\"}", "\"patterns\"");
	load_fails("guard", "{\"patterns\":[]}", "\"patterns\"");
	load_fails("guard", "{\"patterns\":[\"\"]}", "\"patterns\"");
	load_fails("guard", "{\"shell_tools\":[1]}", "\"shell_tools\"");
	load_fails("guard", "{\"pattern\":[\"x\"]}", "unknown option \"pattern\"");
	load_fails("guard", "[1]", "object");
}

/* ---- audit-log ---------------------------------------------------------------------- */

static char dir[64];

static void tmpdir(void)
{
	snprintf(dir, sizeof(dir), "/tmp/agentgate-plugins-XXXXXX");
	assert_non_null(mkdtemp(dir));
}

/* Removes the audit files tmpdir held, and it. */
static void rmdir_audit(void)
{
	char path[128];
	for (int i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), i ? "%s/audit.ndjson.%d" : "%s/audit.ndjson", dir, i);
		unlink(path);
	}
	rmdir(dir);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *b = calloc(1, 1 << 16);
	size_t n = fread(b, 1, (1 << 16) - 1, f);
	b[n] = 0;
	fclose(f);
	return b;
}

static void expect_file(const char *suffix, const char *want)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/audit.ndjson%s", dir, suffix);
	char *got = slurp(path);
	if (!want) {
		if (got)
			fail_msg("%s exists: %s", path, got);
		return;
	}
	if (!got)
		fail_msg("%s does not exist", path);
	assert_string_equal(got, want);
	free(got);
}

static void event(int64_t seq, const char *json, uint64_t dropped)
{
	struct ag_ctx c = fh_ctx("ses_a", 0);
	struct ag_event ev = {.size = sizeof(ev), .seq = seq, .time = 1000 + seq, .type = "x",
			      .json = json, .json_len = strlen(json), .dropped = dropped};
	assert_int_equal(fh_hook(AG_HOOK_EVENT, &c, &ev), AG_HOOK_CONTINUE);
}

/* Event seq as a 39-byte JSON object: a line of 40 bytes. */
static const char *ev40(int seq)
{
	static char b[64];
	snprintf(b, sizeof(b), "{\"seq\":%d,\"type\":\"x\",\"pad\":\"0123456789\"}", seq);
	assert_int_equal(strlen(b), 39);
	return b;
}

static int load_audit(const char *extra)
{
	char opts[256];
	snprintf(opts, sizeof(opts), "{\"file\":\"%s/audit.ndjson\"%s}", dir, extra);
	return load("audit-log", opts);
}

static void audit_log_rotates_before_a_line_would_pass_max_bytes(void **state)
{
	char want[3][128];
	tmpdir();
	assert_int_equal(load_audit(",\"max_bytes\":100,\"keep\":2"), 0);
	for (int seq = 1; seq <= 7; seq++)
		event(seq, ev40(seq), 0);
	fh_unload();
	for (int f = 0; f < 3; f++) { /* the current file: 7; .1: 5 and 6; .2: 3 and 4 */
		int lo = 7 - 2 * f, hi = f ? lo + 1 : lo;
		want[f][0] = 0;
		for (int seq = lo; seq <= hi; seq++)
			snprintf(want[f] + strlen(want[f]), 64, "%s\n", ev40(seq));
	}
	expect_file("", want[0]);
	expect_file(".1", want[1]);
	expect_file(".2", want[2]);
	expect_file(".3", NULL);
	rmdir_audit();
}

static void audit_log_counts_what_the_file_held_before(void **state)
{
	char path[128];
	tmpdir();
	snprintf(path, sizeof(path), "%s/audit.ndjson", dir);
	FILE *f = fopen(path, "w");
	fprintf(f, "%s\n%s\n", ev40(1), ev40(2));
	fclose(f);
	assert_int_equal(load_audit(",\"max_bytes\":100"), 0);
	event(3, ev40(3), 0); /* 80 + 40 > 100: the old lines go to .1 */
	fh_unload();
	char want[128];
	snprintf(want, sizeof(want), "%s\n%s\n", ev40(1), ev40(2));
	expect_file(".1", want);
	snprintf(want, sizeof(want), "%s\n", ev40(3));
	expect_file("", want);
	rmdir_audit();
}

static void audit_log_keep_zero_starts_the_file_over(void **state)
{
	char want[64];
	tmpdir();
	assert_int_equal(load_audit(",\"max_bytes\":100,\"keep\":0"), 0);
	for (int seq = 1; seq <= 3; seq++)
		event(seq, ev40(seq), 0);
	fh_unload();
	snprintf(want, sizeof(want), "%s\n", ev40(3));
	expect_file("", want);
	expect_file(".1", NULL);
	rmdir_audit();
}

static void audit_log_marks_a_gap_where_events_were_dropped(void **state)
{
	char want[256];
	tmpdir();
	assert_int_equal(load_audit(""), 0);
	event(1, "{\"seq\":1}", 0);
	event(5, "{\"seq\":5}", 3);
	fh_unload();
	snprintf(want, sizeof(want), "{\"seq\":1}\n{\"type\":\"audit.gap\",\"dropped\":3,"
		 "\"beforeSeq\":5,\"time\":1005}\n{\"seq\":5}\n");
	expect_file("", want);
	rmdir_audit();
}

static void audit_log_refuses_bad_options_naming_them(void **state)
{
	load_fails("audit-log", "{}", "\"file\"");
	load_fails("audit-log", "{\"file\":\"/nonexistent/dir/audit.ndjson\"}", "\"file\"");
	load_fails("audit-log", "{\"file\":\"/tmp/x\",\"max_bytes\":0}", "\"max_bytes\"");
	load_fails("audit-log", "{\"file\":\"/tmp/x\",\"keep\":-1}", "\"keep\"");
	load_fails("audit-log", "{\"file\":\"/tmp/x\",\"keep\":1.5}", "\"keep\"");
}

/* ---- continuation ------------------------------------------------------------------- */

static const char plan[] =
	"{\"todos\":[{\"content\":\"write the parser\",\"status\":\"completed\","
	"\"priority\":\"high\",\"id\":\"1\"},{\"content\":\"write the tests\","
	"\"status\":\"in_progress\",\"priority\":\"medium\",\"id\":\"2\"},"
	"{\"content\":\"ship it\",\"status\":\"pending\",\"priority\":\"low\",\"id\":\"3\"}]}";
static const char done_plan[] =
	"{\"todos\":[{\"content\":\"write the tests\",\"status\":\"completed\","
	"\"priority\":\"medium\",\"id\":\"2\"},{\"content\":\"ship it\",\"status\":"
	"\"cancelled\",\"priority\":\"low\",\"id\":\"3\"}]}";

static void todowrite(const char *session, const char *input)
{
	struct ag_ctx c = fh_ctx(session, 0);
	assert_int_equal(fh_tool("todowrite", &c, input), 0);
	if (!FH.done)
		fail_msg("todowrite failed: %s", FH.error);
}

static void turn_end(const char *session, const char *state, const char *source)
{
	struct ag_ctx c = fh_ctx(session, 0);
	struct ag_turn_end te = {.size = sizeof(te), .state = state, .source = source,
				 .user_message_id = "msg_u", .terminal_message_id = "msg_a"};
	fh_hook(AG_HOOK_TURN_END, &c, &te);
}

static void idle(const char *session, int depth)
{
	struct ag_ctx c = fh_ctx(session, depth);
	fh_hook(AG_HOOK_SESSION_IDLE, &c, NULL);
}

static int emitted(const char *name)
{
	int n = 0;
	for (int i = 0; i < FH.nemits; i++)
		n += !strcmp(FH.emits[i].name, name);
	return n;
}

static void continuation_keeps_a_todo_list_per_session(void **state)
{
	struct ag_ctx c1 = fh_ctx("ses_1", 0), c2 = fh_ctx("ses_2", 0);
	assert_int_equal(load("continuation", NULL), 0);
	todowrite("ses_1", plan);
	assert_string_equal(FH.title, "2 todos");
	assert_non_null(strstr(FH.output, "\"write the tests\""));
	assert_non_null(fh_kv("todos/ses_1"));
	assert_int_equal(fh_tool("todoread", &c1, "{}"), 0);
	assert_true(FH.done);
	assert_non_null(strstr(FH.output, "\"ship it\""));
	assert_string_equal(FH.title, "2 todos");
	assert_int_equal(fh_tool("todoread", &c2, "{}"), 0);
	assert_string_equal(FH.output, "[]");
	/* a missing id is numbered; a wrong field is named */
	assert_int_equal(fh_tool("todowrite", &c2, "{\"todos\":[{\"content\":\"a\",\"status\":"
				 "\"pending\",\"priority\":\"low\"}]}"), 0);
	assert_non_null(strstr(FH.output, "\"id\":\t\"1\""));
	assert_int_equal(fh_tool("todowrite", &c2, "{\"todos\":[{\"content\":\"a\",\"status\":"
				 "\"pending\",\"priority\":\"low\"},{\"content\":\"b\",\"status\":"
				 "\"done\",\"priority\":\"low\"}]}"), 0);
	assert_true(FH.failed);
	assert_non_null(strstr(FH.error, "todos[1].status must be one of"));
	assert_int_equal(fh_tool("todowrite", &c2, "{\"todos\":\"x\"}"), 0);
	assert_non_null(strstr(FH.error, "todos must be an array"));
	fh_unload();
}

static void continuation_wakes_at_most_max_wakes_times_per_prompt(void **state)
{
	assert_int_equal(load("continuation", "{\"max_wakes\":2}"), 0);
	todowrite("ses_1", plan);
	turn_end("ses_1", "completed", "http");
	idle("ses_1", 0);
	assert_int_equal(FH.nprompts, 1);
	assert_string_equal(FH.prompts[0].session, "ses_1");
	assert_string_equal(FH.prompts[0].dedupe, "continuation:ses_1");
	assert_non_null(strstr(FH.prompts[0].text, "write the tests"));
	assert_non_null(strstr(FH.prompts[0].text, "ship it"));
	assert_null(strstr(FH.prompts[0].text, "write the parser"));
	assert_non_null(strstr(FH.prompts[0].text, "wake 1 of 2"));
	assert_int_equal(emitted("wake"), 1);
	for (int i = 0; i < 3; i++) { /* the wakes' own turns do not give wakes back */
		turn_end("ses_1", "completed", "plugin:continuation");
		idle("ses_1", 0);
	}
	assert_int_equal(FH.nprompts, 2);
	assert_non_null(strstr(FH.prompts[1].text, "wake 2 of 2"));
	assert_int_equal(emitted("exhausted"), 1);
	turn_end("ses_1", "completed", "ws"); /* someone else's prompt does */
	idle("ses_1", 0);
	assert_int_equal(FH.nprompts, 3);
	fh_unload();
}

static void continuation_leaves_aborted_child_and_finished_sessions_alone(void **state)
{
	assert_int_equal(load("continuation", NULL), 0);
	todowrite("ses_1", plan);
	turn_end("ses_1", "cancelled", "http");
	idle("ses_1", 0);
	todowrite("ses_child", plan);
	idle("ses_child", 1);
	assert_int_equal(FH.nprompts, 0);
	todowrite("ses_1", done_plan);
	assert_string_equal(FH.title, "0 todos");
	assert_null(fh_kv("todos/ses_1"));
	turn_end("ses_1", "completed", "http");
	idle("ses_1", 0);
	assert_int_equal(FH.nprompts, 0);
	fh_unload();
}

static void continuation_counts_a_coalesced_wake_once(void **state)
{
	assert_int_equal(load("continuation", NULL), 0);
	todowrite("ses_1", plan);
	turn_end("ses_1", "completed", "http");
	FH.coalesce = 1;
	idle("ses_1", 0);
	assert_int_equal(FH.nprompts, 1);
	assert_int_equal(emitted("wake"), 0);
	assert_string_equal(fh_kv("wakes/ses_1"), "1");
	fh_unload();
}

static void continuation_refuses_bad_options_naming_them(void **state)
{
	load_fails("continuation", "{\"max_wakes\":-1}", "\"max_wakes\"");
	load_fails("continuation", "{\"max_wakes\":\"3\"}", "\"max_wakes\"");
	load_fails("continuation", "{\"max_wakes\":1e300}", "\"max_wakes\"");
	load_fails("continuation", "{\"wakes\":3}", "unknown option \"wakes\"");
}

/* ---- webhook ------------------------------------------------------------------------ */

/* A one-connection-at-a-time HTTP receiver on 127.0.0.1 answering statuses in turn. */
struct receiver {
	int fd, port, n, got;
	int status[4];
	char req[4][4096];
	pthread_t thread;
};

static int listen_any(int *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 8), 0);
	getsockname(fd, (struct sockaddr *)&a, &len);
	*port = ntohs(a.sin_port);
	return fd;
}

/* Reads one request (head and Content-Length body) into buf. */
static void read_request(int c, char *buf, size_t n)
{
	size_t len = 0;
	char *body = NULL;
	struct pollfd p = {.fd = c, .events = POLLIN};
	while (len < n - 1 && poll(&p, 1, 5000) == 1) {
		ssize_t r = read(c, buf + len, n - 1 - len);
		if (r <= 0)
			break;
		buf[len += (size_t)r] = 0;
		char *cl = strcasestr(buf, "content-length:");
		if ((body = strstr(buf, "\r\n\r\n")) && cl &&
		    (size_t)(buf + len - (body + 4)) >= (size_t)atol(cl + 15))
			break;
	}
}

static void *receive(void *arg)
{
	struct receiver *r = arg;
	struct pollfd p = {.fd = r->fd, .events = POLLIN};
	for (int i = 0; i < r->n && poll(&p, 1, 10000) == 1; i++) {
		char resp[128];
		int c = accept(r->fd, NULL, NULL);
		read_request(c, r->req[i], sizeof(r->req[i]));
		snprintf(resp, sizeof(resp), "HTTP/1.1 %d X\r\nContent-Length: 0\r\n"
			 "Connection: close\r\n\r\n", r->status[i]);
		if (write(c, resp, strlen(resp)) < 0)
			break;
		close(c);
		r->got = i + 1;
	}
	return NULL;
}

static void webhook_event(const char *type, int64_t seq, const char *json)
{
	struct ag_ctx c = fh_ctx("ses_w", 0);
	struct ag_event ev = {.size = sizeof(ev), .seq = seq, .type = type, .json = json,
			      .json_len = strlen(json)};
	fh_hook(AG_HOOK_EVENT, &c, &ev);
}

static void webhook_posts_chosen_events_and_retries_a_5xx(void **state)
{
	struct receiver r = {.n = 3, .status = {503, 200, 200}};
	char opts[256];
	const char idle_json[] = "{\"type\":\"session.idle\",\"seq\":7}";
	r.fd = listen_any(&r.port);
	pthread_create(&r.thread, NULL, receive, &r);
	snprintf(opts, sizeof(opts), "{\"url\":\"http://127.0.0.1:%d/hook\",\"retry_ms\":10,"
		 "\"headers\":{\"X-Token\":\"abc\"},\"events\":[\"session.idle\",\"plugin.*\"]}",
		 r.port);
	assert_int_equal(load("webhook", opts), 0); /* this host has no hook_events: all come */
	webhook_event("message.updated", 6, "{\"type\":\"message.updated\"}");
	webhook_event("session.idle", 7, idle_json);
	webhook_event("pluginx", 8, "{\"type\":\"pluginx\"}");
	webhook_event("plugin.probe.turn_end", 9, "{\"type\":\"plugin.probe.turn_end\"}");
	pthread_join(r.thread, NULL);
	close(r.fd);
	assert_int_equal(r.got, 3);
	assert_non_null(strstr(r.req[2], "X-Agentgate-Event: plugin.probe.turn_end\r\n"));
	for (int i = 0; i < 2; i++) {
		assert_non_null(strstr(r.req[i], "POST /hook HTTP/1.1\r\n"));
		assert_non_null(strstr(r.req[i], "X-Agentgate-Event: session.idle\r\n"));
		assert_non_null(strstr(r.req[i], "X-Agentgate-Seq: 7\r\n"));
		assert_non_null(strstr(r.req[i], "X-Token: abc\r\n"));
		assert_non_null(strstr(r.req[i], "Content-Type: application/json\r\n"));
		assert_string_equal(strstr(r.req[i], "\r\n\r\n") + 4, idle_json);
	}
	fh_unload();
	assert_true(fh_logged("HTTP status 503 (attempt 1 of 6)"));
}

static void webhook_never_blocks_the_observer_and_drops_past_the_outbox(void **state)
{
	int port;
	char opts[256];
	close(listen_any(&port)); /* nothing listens there now: connections are refused */
	snprintf(opts, sizeof(opts), "{\"url\":\"http://127.0.0.1:%d/\",\"outbox\":2,"
		 "\"retry_ms\":60000}", port);
	assert_int_equal(load("webhook", opts), 0);
	int64_t t0 = now_ms();
	for (int i = 1; i <= 20; i++)
		webhook_event("session.idle", i, "{\"type\":\"session.idle\"}");
	assert_true(now_ms() - t0 < 500);
	assert_true(fh_logged("outbox full (2 events waiting to be sent)"));
	t0 = now_ms();
	fh_unload(); /* the sender waits 60 s to retry: unloading cuts it short */
	assert_true(now_ms() - t0 < 2000);
	assert_true(fh_logged("was not delivered") || fh_logged("were not delivered"));
}

static void webhook_refuses_bad_options_naming_them(void **state)
{
	load_fails("webhook", "{}", "\"url\"");
	load_fails("webhook", "{\"url\":\"ftp://example.com/\"}", "\"url\"");
	load_fails("webhook", "{\"url\":\"http://x/\",\"headers\":{\"Bad Name\":\"v\"}}",
		   "\"headers\"");
	load_fails("webhook", "{\"url\":\"http://x/\",\"headers\":{\"X\":\"a\\r\\nb\"}}",
		   "\"headers\"");
	load_fails("webhook", "{\"url\":\"http://x/\",\"headers\":[]}", "\"headers\"");
	load_fails("webhook", "{\"url\":\"http://x/\",\"timeout_ms\":0}", "\"timeout_ms\"");
	load_fails("webhook", "{\"url\":\"http://x/\",\"events\":\"session.idle\"}", "\"events\"");
	load_fails("webhook", "{\"url\":\"http://x/\",\"outbox\":0}", "\"outbox\"");
}

/* ---- workspace ---------------------------------------------------------------------- */

static char ws_dir[256];

static int ws_setup(void **state)
{
	snprintf(ws_dir, sizeof(ws_dir), "/tmp/ws-plugin-XXXXXX");
	assert_non_null(mkdtemp(ws_dir));
	char real[4096];
	assert_non_null(realpath(ws_dir, real));
	assert_true(strlen(real) < sizeof(ws_dir));
	memcpy(ws_dir, real, strlen(real) + 1);
	fh_permissions(1);
	assert_int_equal(load("workspace", NULL), 0);
	FH.perm = FH_PERM_ALLOW;
	return 0;
}

static int ws_teardown(void **state)
{
	char cmd[512];
	fh_unload();
	fh_permissions(0);
	fh_set_workspace(NULL);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", ws_dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void ws_put(const char *rel, const char *text)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", ws_dir, rel);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static char *ws_get(const char *rel)
{
	static char buf[4096];
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", ws_dir, rel);
	FILE *f = fopen(p, "r");
	if (!f)
		return NULL;
	buf[fread(buf, 1, sizeof(buf) - 1, f)] = 0;
	fclose(f);
	return buf;
}

/* Runs tool with input in a session working in ws_dir; waits for its ending. */
static void ws_call(const char *tool, const char *input)
{
	struct ag_ctx c = fh_ctx("ses_ws", 0);
	c.directory = ws_dir;
	assert_int_equal(fh_tool(tool, &c, input), 0);
	if (!fh_wait(10000))
		fail_msg("%s %s did not end", tool, input);
}

static void workspace_asks_before_it_edits_and_a_denial_reaches_the_model(void **state)
{
	ws_put("a.txt", "one\n");
	FH.perm = FH_PERM_DENY;
	snprintf(FH.perm_message, sizeof(FH.perm_message), "not today");
	ws_call("edit", "{\"filePath\":\"a.txt\",\"oldString\":\"one\",\"newString\":\"two\"}");
	assert_true(FH.failed);
	assert_string_equal(FH.error, "permission denied: not today");
	assert_string_equal(ws_get("a.txt"), "one\n");
	assert_int_equal(FH.nasks, 1);
	assert_string_equal(FH.asks[0].permission, "edit");
	assert_string_equal(FH.asks[0].patterns, "[\"a.txt\"]");
	assert_string_equal(FH.asks[0].title, "Edit a.txt");
	assert_non_null(strstr(FH.asks[0].metadata, "\"diff\":\"--- a/a.txt\\n+++ b/a.txt\\n@@ -1,1 "
						    "+1,1 @@\\n-one\\n+two\\n\""));
}

static void workspace_goes_on_when_allowed_later_or_without_a_permission_system(void **state)
{
	FH.perm = FH_PERM_LATER; /* the answer comes after permission_ask returned */
	ws_call("write", "{\"filePath\":\"sub/new.txt\",\"content\":\"hello\\n\"}");
	if (!FH.done)
		fail_msg("write failed: %s", FH.error);
	assert_string_equal(ws_get("sub/new.txt"), "hello\n");
	assert_string_equal(FH.asks[0].title, "Create sub/new.txt");
	assert_non_null(strstr(FH.metadata, "\"exists\":false"));
	fh_permissions(0); /* a gateway without one: allowed, nothing asked */
	ws_call("edit", "{\"filePath\":\"sub/new.txt\",\"oldString\":\"hello\",\"newString\":\"bye\"}");
	assert_true(FH.done);
	assert_string_equal(ws_get("sub/new.txt"), "bye\n");
	assert_int_equal(FH.nasks, 1);
	fh_permissions(1);
	FH.perm = FH_PERM_NOTFOUND; /* an ask that fails says so */
	ws_call("write", "{\"filePath\":\"x.txt\",\"content\":\"x\"}");
	assert_true(FH.failed);
	assert_non_null(strstr(FH.error, "cannot ask for permission to Create x.txt: the call is not "
				      "running"));
	assert_null(ws_get("x.txt"));
}

static void workspace_each_tool_asks_its_own_permission(void **state)
{
	ws_put("a.c", "int x;\n");
	const char *calls[][4] = {
		{"read", "{\"filePath\":\"a.c\"}", "read", "[\"a.c\"]"},
		{"list", "{}", "list", "[\".\"]"},
		{"glob", "{\"pattern\":\"*.c\"}", "glob", "[\"*.c\"]"},
		{"grep", "{\"pattern\":\"int\",\"include\":\"*.c\"}", "grep", "[\"int\"]"},
		{"bash", "{\"command\":\"echo hi\"}", "bash", "[\"echo hi\"]"},
	};
	for (int i = 0; i < 5; i++) {
		ws_call(calls[i][0], calls[i][1]);
		if (!FH.done)
			fail_msg("%s failed: %s", calls[i][0], FH.error);
		assert_string_equal(FH.asks[i].permission, calls[i][2]);
		assert_string_equal(FH.asks[i].patterns, calls[i][3]);
	}
	assert_string_equal(FH.asks[4].title, "Run: echo hi");
	assert_non_null(strstr(FH.asks[4].metadata, "\"command\":\"echo hi\""));
	assert_string_equal(FH.output, "hi\n");
}

static void workspace_cancel_stops_a_running_command_and_drops_its_ending(void **state)
{
	struct ag_ctx c = fh_ctx("ses_ws", 0);
	c.directory = ws_dir;
	assert_int_equal(fh_tool("bash", &c, "{\"command\":\"echo started; sleep 100\"}"), 0);
	assert_true(fh_wait_progress(10000)); /* running, its output streamed */
	assert_non_null(strstr(FH.progress, "\"output\":\"started\\n\""));
	int64_t t0 = now_ms();
	fh_cancel();
	assert_false(fh_wait(300)); /* no ending after a cancel */
	fh_unload(); /* joins the workers: the command was killed, not waited for */
	assert_true(now_ms() - t0 < 5000);
	assert_int_equal(load("workspace", NULL), 0); /* for the teardown */
}

static void workspace_works_in_the_fallback_directory_and_hides_secrets(void **state)
{
	struct ag_ctx c = fh_ctx("ses_ws", 0); /* no directory: the setting "workspace" */
	ws_put("f.txt", "fallback\n");
	fh_set_workspace(ws_dir);
	assert_int_equal(fh_tool("read", &c, "{\"filePath\":\"f.txt\"}"), 0);
	assert_true(fh_wait(10000));
	assert_non_null(strstr(FH.output, "1\tfallback"));
	fh_set_workspace(NULL);
	assert_int_equal(fh_tool("read", &c, "{\"filePath\":\"f.txt\"}"), 0);
	assert_true(FH.failed);
	assert_non_null(strstr(FH.error, "the session's directory (none) cannot be used"));
	fh_unload();
	setenv("FH_SECRET", "s3cret", 1); /* the host names it a secret */
	setenv("FH_OTHER", "other", 1);   /* env_deny names this one */
	setenv("FH_KEEP", "kept", 1);
	assert_int_equal(load("workspace", "{\"env_deny\":[\"FH_OTHER\"]}"), 0);
	ws_call("bash", "{\"command\":\"echo ${FH_SECRET-none} ${FH_OTHER-none} ${FH_KEEP-none}\"}");
	assert_string_equal(FH.output, "none none kept\n");
	unsetenv("FH_SECRET");
	unsetenv("FH_OTHER");
	unsetenv("FH_KEEP");
}

static void workspace_refuses_bad_options_and_inputs_naming_them(void **state)
{
	fh_unload();
	load_fails("workspace", "{\"timeout_ms\":0}", "\"timeout_ms\"");
	load_fails("workspace", "{\"timeout_ms\":5000,\"max_timeout_ms\":1000}", "over");
	load_fails("workspace", "{\"shell\":\"sh\"}", "absolute");
	load_fails("workspace", "{\"nope\":1}", "\"nope\"");
	assert_int_equal(load("workspace", NULL), 0);
	ws_call("read", "{}");
	assert_string_equal(FH.error, "the parameter \"filePath\" is required");
	ws_call("read", "{\"filePath\":\"a\",\"offset\":\"x\"}");
	assert_non_null(strstr(FH.error, "\"offset\" must be a whole number"));
	ws_call("bash", "{\"command\":\"true\",\"timeout\":-5}");
	assert_non_null(strstr(FH.error, "\"timeout\""));
	ws_call("grep", "{\"pattern\":\"(\"}");
	assert_non_null(strstr(FH.error, "bad regular expression \"(\""));
	ws_call("edit", "{\"filePath\":\"a\",\"oldString\":1,\"newString\":\"b\"}");
	assert_string_equal(FH.error, "the parameter \"oldString\" must be a string");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(guard_refuses_protected_paths_naming_the_pattern),
		cmocka_unit_test(guard_reads_every_word_of_a_shell_command),
		cmocka_unit_test(guard_takes_patterns_fields_and_shell_tools_from_options),
		cmocka_unit_test(guard_refuses_bad_options_naming_them),
		cmocka_unit_test(audit_log_rotates_before_a_line_would_pass_max_bytes),
		cmocka_unit_test(audit_log_counts_what_the_file_held_before),
		cmocka_unit_test(audit_log_keep_zero_starts_the_file_over),
		cmocka_unit_test(audit_log_marks_a_gap_where_events_were_dropped),
		cmocka_unit_test(audit_log_refuses_bad_options_naming_them),
		cmocka_unit_test(continuation_keeps_a_todo_list_per_session),
		cmocka_unit_test(continuation_wakes_at_most_max_wakes_times_per_prompt),
		cmocka_unit_test(continuation_leaves_aborted_child_and_finished_sessions_alone),
		cmocka_unit_test(continuation_counts_a_coalesced_wake_once),
		cmocka_unit_test(continuation_refuses_bad_options_naming_them),
		cmocka_unit_test(webhook_posts_chosen_events_and_retries_a_5xx),
		cmocka_unit_test(webhook_never_blocks_the_observer_and_drops_past_the_outbox),
		cmocka_unit_test(webhook_refuses_bad_options_naming_them),
		cmocka_unit_test_setup_teardown(
			workspace_asks_before_it_edits_and_a_denial_reaches_the_model, ws_setup,
			ws_teardown),
		cmocka_unit_test_setup_teardown(
			workspace_goes_on_when_allowed_later_or_without_a_permission_system, ws_setup,
			ws_teardown),
		cmocka_unit_test_setup_teardown(workspace_each_tool_asks_its_own_permission, ws_setup,
						ws_teardown),
		cmocka_unit_test_setup_teardown(
			workspace_cancel_stops_a_running_command_and_drops_its_ending, ws_setup,
			ws_teardown),
		cmocka_unit_test_setup_teardown(
			workspace_works_in_the_fallback_directory_and_hides_secrets, ws_setup,
			ws_teardown),
		cmocka_unit_test_setup_teardown(workspace_refuses_bad_options_and_inputs_naming_them,
						ws_setup, ws_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
