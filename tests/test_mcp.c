/* The mcp plugin's pure parts, linked alone: JSON-RPC messages and how a server's are
 * read, the line and SSE framing at every split point, OpenCode's tool names, a
 * tools/call result flattened to text, the status record, and the config's servers.
 * The plugin against real MCP servers is tests/node/mcp.test.mjs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mcp.h"

#include <stdlib.h>
#include <string.h>

/* ---- messages ---- */

static void requests_are_one_line_of_json_rpc(void **state)
{
	cJSON *params = cJSON_CreateObject();
	cJSON_AddStringToObject(params, "text", "two\nlines");
	char *s = rpc_request(7, "tools/call", params);
	assert_null(strchr(s, '\n'));
	cJSON *o = cJSON_Parse(s);
	assert_string_equal(cJSON_GetObjectItem(o, "jsonrpc")->valuestring, "2.0");
	assert_int_equal(cJSON_GetObjectItem(o, "id")->valueint, 7);
	assert_string_equal(cJSON_GetObjectItem(o, "method")->valuestring, "tools/call");
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "params"), "text")->valuestring,
			    "two\nlines");
	cJSON_Delete(o);
	free(s);

	s = rpc_notification("notifications/initialized", NULL);
	o = cJSON_Parse(s);
	assert_null(cJSON_GetObjectItem(o, "id"));
	assert_null(cJSON_GetObjectItem(o, "params"));
	cJSON_Delete(o);
	free(s);
}

static void initialize_names_the_client_and_protocol(void **state)
{
	char *s = rpc_request(1, "initialize", rpc_initialize_params("9.9"));
	cJSON *o = cJSON_Parse(s), *p = cJSON_GetObjectItem(o, "params");
	assert_string_equal(cJSON_GetObjectItem(p, "protocolVersion")->valuestring, RPC_PROTOCOL);
	assert_true(cJSON_IsObject(cJSON_GetObjectItem(p, "capabilities")));
	cJSON *info = cJSON_GetObjectItem(p, "clientInfo");
	assert_string_equal(cJSON_GetObjectItem(info, "name")->valuestring, "agentgate");
	assert_string_equal(cJSON_GetObjectItem(info, "version")->valuestring, "9.9");
	cJSON_Delete(o);
	free(s);
	assert_true(rpc_version_ok("2025-03-26"));
	assert_true(rpc_version_ok("2024-11-05"));
	assert_false(rpc_version_ok("1999-01-01"));
	assert_false(rpc_version_ok(NULL));
}

static void calls_carry_arguments_progress_and_cancels_the_id(void **state)
{
	cJSON *p = rpc_call_params("echo", "{\"message\":\"hi\"}", 12);
	assert_string_equal(cJSON_GetObjectItem(p, "name")->valuestring, "echo");
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(p, "arguments"), "message")
				    ->valuestring, "hi");
	assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(p, "_meta"), "progressToken")
				 ->valueint, 12);
	cJSON_Delete(p);
	p = rpc_call_params("echo", "not json", -1); /* arguments are always an object */
	assert_true(cJSON_IsObject(cJSON_GetObjectItem(p, "arguments")));
	assert_null(cJSON_GetObjectItem(p, "_meta"));
	cJSON_Delete(p);
	p = rpc_cancel_params(5, "aborted");
	assert_int_equal(cJSON_GetObjectItem(p, "requestId")->valueint, 5);
	assert_string_equal(cJSON_GetObjectItem(p, "reason")->valuestring, "aborted");
	cJSON_Delete(p);
	p = rpc_list_params("abc");
	assert_string_equal(cJSON_GetObjectItem(p, "cursor")->valuestring, "abc");
	cJSON_Delete(p);
}

static enum rpc_kind read_text(const char *text, struct rpc_msg *m, cJSON **doc)
{
	*doc = cJSON_Parse(text);
	return rpc_read(*doc, m);
}

static void a_servers_messages_are_told_apart(void **state)
{
	struct rpc_msg m;
	cJSON *d;
	char buf[128];
	assert_int_equal(read_text("{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}", &m, &d), RPC_RESPONSE);
	assert_int_equal(m.id, 3);
	cJSON_Delete(d);
	assert_int_equal(read_text("{\"jsonrpc\":\"2.0\",\"id\":4,\"error\":{\"code\":-32601,"
				   "\"message\":\"nope\"}}", &m, &d), RPC_RESPONSE);
	rpc_error_text(m.error, buf, sizeof(buf));
	assert_string_equal(buf, "nope (code -32601)");
	cJSON_Delete(d);
	assert_int_equal(read_text("{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":\"ping\"}", &m, &d),
			 RPC_REQUEST);
	assert_string_equal(m.method, "ping");
	assert_string_equal(m.id_json->valuestring, "x");
	cJSON_Delete(d);
	assert_int_equal(read_text("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/"
				   "list_changed\"}", &m, &d), RPC_NOTIFICATION);
	cJSON_Delete(d);
	/* not ours: a string or fractional id never matches a request of ours */
	assert_int_equal(read_text("{\"id\":\"7\",\"result\":{}}", &m, &d), RPC_RESPONSE);
	assert_int_equal(m.id, -1);
	cJSON_Delete(d);
	assert_int_equal(read_text("{\"id\":1.5,\"result\":{}}", &m, &d), RPC_RESPONSE);
	assert_int_equal(m.id, -1);
	cJSON_Delete(d);
	assert_int_equal(read_text("{\"id\":1}", &m, &d), RPC_INVALID);
	cJSON_Delete(d);
	assert_int_equal(read_text("[1,2]", &m, &d), RPC_INVALID);
	cJSON_Delete(d);
}

static void answers_echo_the_servers_id(void **state)
{
	cJSON *id = cJSON_CreateString("req-1");
	char *s = rpc_result(id, NULL);
	assert_string_equal(s, "{\"jsonrpc\":\"2.0\",\"id\":\"req-1\",\"result\":{}}");
	free(s);
	s = rpc_error(id, -32601, "no");
	assert_string_equal(s, "{\"jsonrpc\":\"2.0\",\"id\":\"req-1\",\"error\":{\"code\":-32601,"
			    "\"message\":\"no\"}}");
	free(s);
	cJSON_Delete(id);
}

/* ---- framing ---- */

struct lines {
	char got[16][64];
	int n;
};

static void collect(void *user, char *line, size_t len)
{
	struct lines *l = user;
	assert_int_equal(strlen(line), len);
	if (l->n < 16)
		snprintf(l->got[l->n++], 64, "%s", line);
}

static void lines_are_whole_at_every_split_point(void **state)
{
	const char *in = "{\"a\":1}\r\n\n{\"b\":2}\nlast";
	size_t n = strlen(in);
	for (size_t cut = 0; cut <= n; cut++) {
		struct linebuf b = {.max = 1024};
		struct lines l = {0};
		assert_int_equal(linebuf_feed(&b, in, cut, collect, &l), 0);
		assert_int_equal(linebuf_feed(&b, in + cut, n - cut, collect, &l), 0);
		assert_int_equal(l.n, 3);
		assert_string_equal(l.got[0], "{\"a\":1}");
		assert_string_equal(l.got[1], "");
		assert_string_equal(l.got[2], "{\"b\":2}");
		linebuf_flush(&b, collect, &l);
		assert_int_equal(l.n, 4);
		assert_string_equal(l.got[3], "last");
		linebuf_free(&b);
	}
}

static void an_oversized_line_is_dropped_and_the_next_one_read(void **state)
{
	struct linebuf b = {.max = 8};
	struct lines l = {0};
	assert_int_equal(linebuf_feed(&b, "0123456", 7, collect, &l), 0);
	assert_int_equal(linebuf_feed(&b, "789abcdef\nok\n", 13, collect, &l), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.got[0], "ok");
	assert_int_equal(b.dropped, 1);
	linebuf_free(&b);
}

static void sse_event(void *user, const char *data, size_t len)
{
	struct lines *l = user;
	assert_int_equal(strlen(data), len);
	if (l->n < 16)
		snprintf(l->got[l->n++], 64, "%s", data);
}

static void sse_events_are_whole_at_every_split_point(void **state)
{
	const char *in = ": keep-alive\r\n\r\nevent: message\nid: 1\ndata: {\"a\":\ndata:1}\n\n"
			 "event: other\ndata: skipped\n\ndata: {\"b\":2}\r\n\r\n";
	size_t n = strlen(in);
	for (size_t cut = 0; cut <= n; cut++) {
		struct sse s;
		struct lines l = {0};
		sse_init(&s, 1 << 20, sse_event, &l);
		assert_int_equal(sse_feed(&s, in, cut), 0);
		assert_int_equal(sse_feed(&s, in + cut, n - cut), 0);
		assert_int_equal(l.n, 2);
		assert_string_equal(l.got[0], "{\"a\":\n1}");
		assert_string_equal(l.got[1], "{\"b\":2}");
		sse_free(&s);
	}
}

/* ---- names ---- */

static void names_are_opencodes(void **state)
{
	char out[TOOL_NAME_MAX + 1];
	assert_int_equal(tools_name("my server", "read.file/v2", out, sizeof(out)), 0);
	assert_string_equal(out, "my_server_read_file_v2");
	assert_int_equal(tools_name("everything", "get-tiny-image", out, sizeof(out)), 0);
	assert_string_equal(out, "everything_get-tiny-image");
	assert_int_equal(tools_name("ü", "ok_1", out, sizeof(out)), 0);
	assert_string_equal(out, "___ok_1"); /* each byte of a multibyte letter */
	char long_name[80];
	memset(long_name, 'x', 60);
	long_name[60] = '\0';
	assert_int_equal(tools_name("server", long_name, out, sizeof(out)), -1);
}

static void a_tool_list_becomes_definitions(void **state)
{
	cJSON *list = cJSON_Parse(
		"[{\"name\":\"echo\",\"description\":\"Echoes\",\"inputSchema\":{\"type\":\"object\","
		"\"properties\":{\"message\":{\"type\":\"string\"}}}},"
		"{\"name\":\"a.b\"},{\"name\":\"a_b\"},{\"description\":\"nameless\"},"
		"{\"name\":\"" "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" "\"}]");
	struct tooldef *t;
	int n;
	char skipped[512] = "";
	assert_int_equal(tools_from_list("srv", list, &t, &n, skipped, sizeof(skipped)), 0);
	assert_int_equal(n, 2);
	assert_string_equal(t[0].name, "srv_echo");
	assert_string_equal(t[0].orig, "echo");
	assert_string_equal(t[0].description, "Echoes");
	assert_non_null(strstr(t[0].schema, "\"message\""));
	assert_string_equal(t[1].name, "srv_a_b");
	assert_string_equal(t[1].orig, "a.b");
	assert_non_null(strstr(t[1].description, "a.b")); /* a description is always there */
	assert_string_equal(t[1].schema, "{\"type\":\"object\",\"properties\":{}}");
	assert_non_null(strstr(skipped, "a_b: another tool has the same name"));
	assert_non_null(strstr(skipped, "without a name"));
	assert_non_null(strstr(skipped, "longer than 64"));
	struct tooldef c;
	assert_int_equal(tools_copy(&c, &t[0]), 0);
	assert_true(tools_same(&c, &t[0]));
	assert_false(tools_same(&c, &t[1]));
	tools_clear(&c);
	tools_free(t, n);
	cJSON_Delete(list);
}

/* ---- results ---- */

static int flatten(const char *json, char **out)
{
	cJSON *r = cJSON_Parse(json);
	int rc = tools_flatten(r, out);
	cJSON_Delete(r);
	return rc;
}

static void text_passes_and_other_content_is_described(void **state)
{
	char *out;
	assert_int_equal(flatten("{\"content\":["
				 "{\"type\":\"text\",\"text\":\"hello\"},"
				 "{\"type\":\"image\",\"data\":\"aGVsbG8=\",\"mimeType\":\"image/png\"},"
				 "{\"type\":\"audio\",\"data\":\"AAAA\",\"mimeType\":\"audio/wav\"},"
				 "{\"type\":\"resource\",\"resource\":{\"uri\":\"file:///a\",\"text\":\"A text\"}},"
				 "{\"type\":\"resource\",\"resource\":{\"uri\":\"file:///b\",\"mimeType\":"
				 "\"application/zip\",\"blob\":\"AAECAw==\"}},"
				 "{\"type\":\"resource_link\",\"uri\":\"file:///c\",\"name\":\"c.txt\","
				 "\"mimeType\":\"text/plain\",\"description\":\"the c file\"},"
				 "{\"type\":\"hologram\"}]}", &out), 0);
	assert_string_equal(out, "hello\n"
			    "[image: image/png, 5 bytes, not shown]\n"
			    "[audio: audio/wav, 3 bytes, not shown]\n"
			    "A text\n"
			    "[resource file:///b: application/zip, 4 bytes, not shown]\n"
			    "[resource link: c.txt <file:///c> (text/plain): the c file]\n"
			    "[hologram content, not shown]");
	free(out);
}

static void is_error_and_structured_content(void **state)
{
	char *out;
	assert_int_equal(flatten("{\"isError\":true,\"content\":[{\"type\":\"text\",\"text\":"
				 "\"no such file\"}]}", &out), 1);
	assert_string_equal(out, "no such file");
	free(out);
	assert_int_equal(flatten("{\"content\":[],\"structuredContent\":{\"sum\":3}}", &out), 0);
	assert_string_equal(out, "{\"sum\":3}");
	free(out);
	assert_int_equal(flatten("{}", &out), 0);
	assert_string_equal(out, "");
	free(out);
}

/* ---- status ---- */

static void status_is_opencodes_shape_with_ours(void **state)
{
	struct tooldef tools[1] = {{.name = "fs_read"}};
	struct srv_view v[3] = {
		{.name = "fs", .state = ST_CONNECTED, .tools = tools, .ntools = 1, .pid = 42},
		{.name = "web", .remote = 1, .state = ST_FAILED, .error = "cannot reach it",
		 .restarts = 3},
		{.name = "off", .state = ST_DISABLED},
	};
	char *s = status_json(v, 3);
	assert_string_equal(s,
		"{\"fs\":{\"status\":\"connected\",\"type\":\"local\",\"tools\":[\"fs_read\"],"
		"\"restarts\":0,\"pid\":42},"
		"\"web\":{\"status\":\"failed\",\"type\":\"remote\",\"error\":\"cannot reach it\","
		"\"tools\":[],\"restarts\":3},"
		"\"off\":{\"status\":\"disabled\",\"type\":\"local\",\"tools\":[],\"restarts\":0}}");
	free(s);
	assert_string_equal(status_state_name(ST_CONNECTING), "connecting");
}

/* ---- config ---- */

static struct srv_conf *parse(const char *json, int *n)
{
	struct srv_conf *c = NULL;
	char why[256];
	char *secrets[] = {"MCP_TEST_SECRET", NULL};
	assert_int_equal(conf_parse(json, secrets, 60000, &c, n, why, sizeof(why)), 0);
	return c;
}

static int env_has(char **envp, const char *entry)
{
	for (; envp && *envp; envp++)
		if (!strcmp(*envp, entry))
			return 1;
	return 0;
}

static void servers_are_read_in_opencodes_shape(void **state)
{
	int n;
	setenv("MCP_TEST_SECRET", "hide me", 1);
	setenv("MCP_TEST_PLAIN", "kept", 1);
	struct srv_conf *c = parse(
		"{\"fs\":{\"type\":\"local\",\"command\":[\"npx\",\"-y\",\"pkg\"],\"environment\":"
		"{\"A\":\"1\",\"MCP_TEST_PLAIN\":\"over\"},\"timeout\":5000},"
		"\"web\":{\"type\":\"remote\",\"url\":\"https://example.invalid/mcp\",\"headers\":"
		"{\"Authorization\":\"Bearer x\"},\"enabled\":false}}", &n);
	assert_int_equal(n, 2);
	assert_null(c[0].error);
	assert_int_equal(c[0].type, SRV_LOCAL);
	assert_string_equal(c[0].argv[0], "npx");
	assert_string_equal(c[0].argv[2], "pkg");
	assert_null(c[0].argv[3]);
	assert_int_equal(c[0].timeout_ms, 5000);
	assert_true(env_has(c[0].envp, "A=1"));
	assert_true(env_has(c[0].envp, "MCP_TEST_PLAIN=over"));
	assert_false(env_has(c[0].envp, "MCP_TEST_PLAIN=kept"));
	assert_false(env_has(c[0].envp, "MCP_TEST_SECRET=hide me"));
	assert_int_equal(c[1].type, SRV_REMOTE);
	assert_false(c[1].enabled);
	assert_int_equal(c[1].timeout_ms, 60000);
	assert_string_equal(c[1].headers->data, "Authorization: Bearer x");
	conf_free(c, n);
}

static void a_bad_server_is_kept_with_its_error(void **state)
{
	int n;
	struct srv_conf *c = parse("{\"a\":{\"type\":\"local\",\"command\":[]},"
				   "\"b\":{\"type\":\"remote\",\"url\":\"ftp://x\"},"
				   "\"c\":{\"type\":\"local\",\"command\":[\"x\"],\"colour\":1},"
				   "\"d\":{\"type\":\"carrier-pigeon\"},"
				   "\"e\":{\"type\":\"local\",\"command\":[\"x\"],\"timeout\":-1},"
				   "\"f\":5}", &n);
	assert_int_equal(n, 6);
	assert_non_null(strstr(c[0].error, "\"command\""));
	assert_non_null(strstr(c[1].error, "\"url\""));
	assert_non_null(strstr(c[2].error, "unknown key \"colour\""));
	assert_non_null(strstr(c[3].error, "\"type\""));
	assert_non_null(strstr(c[4].error, "\"timeout\""));
	assert_non_null(strstr(c[5].error, "must be an object"));
	conf_free(c, n);

	struct srv_conf *none = NULL;
	char why[256];
	assert_int_equal(conf_parse("[1]", NULL, 1, &none, &n, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "\"mcp\" must be an object"));
}

static void the_options_servers_win_over_the_configs(void **state)
{
	cJSON *opt = cJSON_Parse("{\"a\":{\"url\":\"opt\"},\"c\":{}}");
	char *m = conf_merge("{\"a\":{\"url\":\"cfg\"},\"b\":{}}", opt);
	cJSON *o = cJSON_Parse(m);
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "a"), "url")->valuestring, "opt");
	assert_non_null(cJSON_GetObjectItem(o, "b"));
	assert_non_null(cJSON_GetObjectItem(o, "c"));
	cJSON_Delete(o);
	free(m);
	m = conf_merge(NULL, NULL);
	assert_string_equal(m, "{}");
	free(m);
	m = conf_merge("7", NULL); /* refused by conf_parse */
	assert_string_equal(m, "null");
	free(m);
	cJSON_Delete(opt);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(requests_are_one_line_of_json_rpc),
		cmocka_unit_test(initialize_names_the_client_and_protocol),
		cmocka_unit_test(calls_carry_arguments_progress_and_cancels_the_id),
		cmocka_unit_test(a_servers_messages_are_told_apart),
		cmocka_unit_test(answers_echo_the_servers_id),
		cmocka_unit_test(lines_are_whole_at_every_split_point),
		cmocka_unit_test(an_oversized_line_is_dropped_and_the_next_one_read),
		cmocka_unit_test(sse_events_are_whole_at_every_split_point),
		cmocka_unit_test(names_are_opencodes),
		cmocka_unit_test(a_tool_list_becomes_definitions),
		cmocka_unit_test(text_passes_and_other_content_is_described),
		cmocka_unit_test(is_error_and_structured_content),
		cmocka_unit_test(status_is_opencodes_shape_with_ours),
		cmocka_unit_test(servers_are_read_in_opencodes_shape),
		cmocka_unit_test(a_bad_server_is_kept_with_its_error),
		cmocka_unit_test(the_options_servers_win_over_the_configs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
