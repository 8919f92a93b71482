/* The provider wire codecs alone: request bodies in each provider's shape, and streams
 * parsed identically whatever way the bytes are split (every byte boundary), with tool
 * calls assembled from fragments, reasoning, usage, finish reasons and stream errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "jsonin.h"
#include "jw.h"
#include "sse.h"
#include "wire.h"

struct result {
	struct jw text, reasoning;
	struct wire_state ws;
	int rc;
};

static void on_text(void *arg, int reasoning, const char *s, size_t n)
{
	struct result *r = arg;
	jw_append(reasoning ? &r->reasoning : &r->text, s, n);
}

static int on_event(void *arg, const struct sse_event *ev)
{
	struct result *r = arg;
	struct wire_out out = {on_text, r};
	int rc = wire_event(&r->ws, ev->type, ev->data, ev->data_len, &out);
	if (rc)
		r->rc = rc;
	return 0;
}

/* Parses stream split into pieces at the given cut points (sorted, may be empty). */
static void parse_limited(struct result *r, enum wire_kind kind, const char *stream,
			  const size_t *cuts, int ncuts, size_t max_output)
{
	memset(r, 0, sizeof(*r));
	jw_init(&r->text);
	jw_init(&r->reasoning);
	jw_append(&r->text, "", 0);
	jw_append(&r->reasoning, "", 0);
	wire_init(&r->ws, kind);
	r->ws.max_output = max_output;
	struct sse_parser p;
	sse_init(&p, 0, on_event, r);
	size_t at = 0, len = strlen(stream);
	for (int i = 0; i <= ncuts; i++) {
		size_t end = i < ncuts ? cuts[i] : len;
		assert_int_equal(sse_feed(&p, stream + at, end - at), 0);
		at = end;
	}
	sse_finish(&p);
	sse_free(&p);
}

static void parse(struct result *r, enum wire_kind kind, const char *stream, const size_t *cuts,
		  int ncuts)
{
	parse_limited(r, kind, stream, cuts, ncuts, 0);
}

static void result_free(struct result *r)
{
	jw_free(&r->text);
	jw_free(&r->reasoning);
	wire_free(&r->ws);
}

static const char openai_stream[] =
	"data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"reasoning_content\":\"Hmm.\"}}]}\n\n"
	"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Héllo\"}}]}\r\n\r\n"
	": keep-alive\n\n"
	"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\"}}]}\n\n"
	"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" world\"}}]}\n\n"
	"data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_a\","
	"\"type\":\"function\",\"function\":{\"name\":\"echo\",\"arguments\":\"\"}}]}}]}\n\n"
	"data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_b\","
	"\"function\":{\"name\":\"sleep\",\"arguments\":\"{\\\"ms\\\"\"}}]}}]}\n\n"
	"data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":"
	"{\"arguments\":\"{\\\"text\\\":\"}}]}}]}\n\n"
	"data: {not json\n\n"
	"data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"function\":"
	"{\"arguments\":\":5}\"}}]}}]}\n\n"
	"data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":"
	"{\"arguments\":\"\\\"x\\\"}\"}}]}}]}\n\n"
	"data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n"
	"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":7}}\n\n"
	"data: [DONE]\n\n";

static void check_openai(struct result *r)
{
	assert_string_equal(r->text.buf, "Héllo world");
	assert_string_equal(r->reasoning.buf, "Hmm.");
	assert_int_equal(wire_tool_count(&r->ws), 2);
	const struct wire_tool *a = wire_tool_at(&r->ws, 0), *b = wire_tool_at(&r->ws, 1);
	assert_string_equal(a->id, "call_a");
	assert_string_equal(a->name, "echo");
	assert_string_equal(a->args, "{\"text\":\"x\"}");
	assert_string_equal(b->name, "sleep");
	assert_string_equal(b->args, "{\"ms\":5}");
	assert_string_equal(r->ws.finish, "tool-calls");
	assert_int_equal(r->ws.usage.input, 11);
	assert_int_equal(r->ws.usage.output, 7);
	assert_true(r->ws.finished);
	assert_int_equal(r->ws.malformed, 1);
}

static void openai_stream_parses_the_same_at_every_split(void **state)
{
	struct result r;
	parse(&r, WIRE_OPENAI, openai_stream, NULL, 0);
	check_openai(&r);
	result_free(&r);
	size_t len = strlen(openai_stream);
	for (size_t cut = 1; cut < len; cut++) {
		parse(&r, WIRE_OPENAI, openai_stream, &cut, 1);
		check_openai(&r);
		result_free(&r);
	}
	size_t *every = malloc(len * sizeof(size_t));
	for (size_t i = 0; i < len - 1; i++)
		every[i] = i + 1;
	parse(&r, WIRE_OPENAI, openai_stream, every, (int)len - 1);
	check_openai(&r);
	result_free(&r);
	free(every);
}

static const char anthropic_stream[] =
	"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":"
	"{\"input_tokens\":20,\"output_tokens\":1}}}\n\n"
	"event: ping\ndata: {\"type\": \"ping\"}\n\n"
	"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,"
	"\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n"
	"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
	"\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"Let me see.\"}}\n\n"
	"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
	"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,"
	"\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
	"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,"
	"\"delta\":{\"type\":\"text_delta\",\"text\":\"Checking\"}}\n\n"
	"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":2,"
	"\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"echo\",\"input\":{}}}\n\n"
	"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,"
	"\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"te\"}}\n\n"
	"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,"
	"\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"xt\\\": \\\"hi\\\"}\"}}\n\n"
	"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":2}\n\n"
	"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
	"\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\n"
	"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

static void check_anthropic(struct result *r)
{
	assert_string_equal(r->text.buf, "Checking");
	assert_string_equal(r->reasoning.buf, "Let me see.");
	assert_int_equal(wire_tool_count(&r->ws), 1);
	assert_string_equal(wire_tool_at(&r->ws, 0)->id, "toolu_1");
	assert_string_equal(wire_tool_at(&r->ws, 0)->args, "{\"text\": \"hi\"}");
	assert_string_equal(r->ws.finish, "tool-calls");
	assert_int_equal(r->ws.usage.input, 20);
	assert_int_equal(r->ws.usage.output, 15);
	assert_true(r->ws.finished);
}

static void anthropic_stream_parses_the_same_at_every_split(void **state)
{
	struct result r;
	size_t len = strlen(anthropic_stream);
	for (size_t cut = 0; cut < len; cut++) {
		parse(&r, WIRE_ANTHROPIC, anthropic_stream, &cut, cut ? 1 : 0);
		check_anthropic(&r);
		result_free(&r);
	}
}

static size_t output_of(struct result *r)
{
	size_t n = r->text.len + r->reasoning.len;
	for (int i = 0; i < wire_tool_count(&r->ws); i++)
		n += wire_tool_at(&r->ws, i)->args_len;
	return n;
}

/* With max_output set, text + reasoning + tool-call arguments never pass it, whatever the
 * limit; passing it is reported (over_limit, rc 1) and nothing after it is taken. */
static void output_stops_at_max_output(void **state)
{
	const char *streams[] = {openai_stream, anthropic_stream};
	for (int k = 0; k < 2; k++) {
		struct result r;
		parse(&r, k ? WIRE_ANTHROPIC : WIRE_OPENAI, streams[k], NULL, 0);
		size_t total = output_of(&r);
		assert_true(total > 10);
		result_free(&r);
		for (size_t max = 1; max <= total + 1; max++) {
			parse_limited(&r, k ? WIRE_ANTHROPIC : WIRE_OPENAI, streams[k], NULL, 0, max);
			size_t got = output_of(&r);
			if (got > max || r.ws.over_limit != (max < total) || (max < total && r.rc != 1))
				fail_msg("stream %d, max_output %zu: %zu bytes taken of %zu, over_limit %d",
					 k, max, got, total, r.ws.over_limit);
			result_free(&r);
		}
	}
}

static void stream_errors_are_reported_with_retryability(void **state)
{
	struct result r;
	parse(&r, WIRE_ANTHROPIC,
	      "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
	      "\"message\":\"Overloaded\"}}\n\n", NULL, 0);
	assert_int_equal(r.rc, 1);
	assert_non_null(strstr(r.ws.error, "Overloaded"));
	assert_true(r.ws.error_retryable);
	result_free(&r);
	parse(&r, WIRE_OPENAI, "data: {\"error\":{\"message\":\"context too long\"}}\n\n", NULL, 0);
	assert_int_equal(r.rc, 1);
	assert_string_equal(r.ws.error, "context too long");
	result_free(&r);
	const char *b1 = "{\"error\":{\"message\":\"Incorrect API key\"}}";
	char *m = wire_error_message(b1, strlen(b1));
	assert_string_equal(m, "Incorrect API key");
	free(m);
	const char *b2 = "{\"type\":\"error\",\"error\":{\"type\":\"x\",\"message\":\"bad model\"}}";
	m = wire_error_message(b2, strlen(b2));
	assert_string_equal(m, "bad model");
	free(m);
	assert_null(wire_error_message("<html>", 6));
}

static cJSON *history(void)
{
	return cJSON_Parse(
		"[{\"role\":\"user\",\"content\":\"hi\"},"
		"{\"role\":\"assistant\",\"content\":\"calling\",\"tool_calls\":[{\"id\":\"c1\","
		"\"name\":\"echo\",\"arguments\":\"{\\\"text\\\":\\\"a\\\"}\"},{\"id\":\"c2\","
		"\"name\":\"echo\",\"arguments\":\"{}\"}]},"
		"{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"a\"},"
		"{\"role\":\"tool\",\"tool_call_id\":\"c2\",\"content\":\"Error: no text\"}]");
}

static void requests_take_each_providers_shape(void **state)
{
	cJSON *msgs = history();
	cJSON *tools = cJSON_Parse("[{\"name\":\"echo\",\"description\":\"d\",\"parameters\":"
				   "{\"type\":\"object\"}}]");
	cJSON *opts = cJSON_Parse("{\"temperature\":0.5,\"stream\":false}");
	struct llm_request rq = {.model = "m1", .system = "be brief", .messages = msgs,
				 .tools = tools};
	struct err e = {0};
	char *o = wire_request(WIRE_OPENAI, &rq, opts, &e);
	cJSON *j = cJSON_Parse(o);
	assert_string_equal(cJSON_GetObjectItem(j, "model")->valuestring, "m1");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "stream")));
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "stream_options"),
						     "include_usage")));
	assert_int_equal(cJSON_GetObjectItem(j, "temperature")->valuedouble * 10, 5);
	cJSON *m = cJSON_GetObjectItem(j, "messages");
	assert_int_equal(cJSON_GetArraySize(m), 5);
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(m, 0), "role")->valuestring, "system");
	cJSON *call = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(m, 2), "tool_calls"), 0);
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(call, "function"), "arguments")
				    ->valuestring, "{\"text\":\"a\"}");
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(m, 3), "tool_call_id")->valuestring, "c1");
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(
		cJSON_GetObjectItem(j, "tools"), 0), "function"), "name")->valuestring, "echo");
	cJSON_Delete(j);
	free(o);
	char *a = wire_request(WIRE_ANTHROPIC, &rq, NULL, &e);
	j = cJSON_Parse(a);
	assert_string_equal(cJSON_GetObjectItem(j, "system")->valuestring, "be brief");
	m = cJSON_GetObjectItem(j, "messages");
	assert_int_equal(cJSON_GetArraySize(m), 3); /* user, assistant, user(tool results) */
	cJSON *results = cJSON_GetObjectItem(cJSON_GetArrayItem(m, 2), "content");
	assert_int_equal(cJSON_GetArraySize(results), 2);
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(results, 1), "tool_use_id")->valuestring, "c2");
	cJSON *use = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(m, 1), "content"), 1);
	assert_string_equal(cJSON_GetObjectItem(use, "type")->valuestring, "tool_use");
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(use, "input"), "text")->valuestring, "a");
	assert_non_null(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "tools"), 0),
					    "input_schema"));
	cJSON_Delete(j);
	free(a);
	cJSON_Delete(msgs);
	cJSON_Delete(tools);
	cJSON_Delete(opts);
}

/* A user message with files: the JSON of both wire formats' user content. */
static cJSON *user_content(enum wire_kind kind, const cJSON *msgs, int refused)
{
	struct llm_request rq = {.model = "m", .messages = msgs, .files_refused = refused};
	struct err e = {0};
	char *body = wire_request(kind, &rq, NULL, &e);
	assert_non_null(body);
	cJSON *j = cJSON_Parse(body);
	free(body);
	cJSON *m = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "messages"), 0);
	cJSON *c = cJSON_DetachItemFromObject(m, "content");
	cJSON_Delete(j);
	return c;
}

static const char *str_at(const cJSON *arr, int i, const char *k1, const char *k2)
{
	const cJSON *o = cJSON_GetObjectItem(cJSON_GetArrayItem(arr, i), k1);
	return k2 ? cJSON_GetStringValue(cJSON_GetObjectItem(o, k2)) : cJSON_GetStringValue(o);
}

/* Files go after the message's text: images as OpenAI image_url parts and Anthropic
 * image blocks, PDFs as an OpenAI file part and an Anthropic document block (base64
 * sources), text files and listings inlined as text; what the model does not take, or
 * cannot be read, goes as a note naming it. */
static void files_take_each_providers_shape(void **state)
{
	cJSON *msgs = cJSON_Parse(
		"[{\"role\":\"user\",\"content\":\"see\",\"files\":["
		"{\"mime\":\"image/png\",\"filename\":\"a.png\",\"url\":\"data:image/png;base64,iVBORw0KGgo=\"},"
		"{\"mime\":\"application/pdf\",\"filename\":\"d.pdf\",\"url\":\"data:application/pdf;base64,JVBERi0=\"},"
		"{\"mime\":\"text/plain\",\"filename\":\"n.txt\",\"url\":\"data:text/plain;base64,aMOpbGxv\"},"
		"{\"mime\":\"application/x-directory\",\"filename\":\"src\",\"url\":\"data:application/x-directory;base64,YS5jCg==\"},"
		"{\"mime\":\"text/plain\",\"filename\":\"bad.txt\",\"url\":\"file:///x\"}]}]");
	cJSON *o = user_content(WIRE_OPENAI, msgs, 0);
	assert_int_equal(cJSON_GetArraySize(o), 6);
	assert_string_equal(str_at(o, 0, "text", NULL), "see");
	assert_string_equal(str_at(o, 1, "type", NULL), "image_url");
	assert_string_equal(str_at(o, 1, "image_url", "url"), "data:image/png;base64,iVBORw0KGgo=");
	assert_string_equal(str_at(o, 2, "type", NULL), "file");
	assert_string_equal(str_at(o, 2, "file", "filename"), "d.pdf");
	assert_string_equal(str_at(o, 2, "file", "file_data"), "data:application/pdf;base64,JVBERi0=");
	assert_string_equal(str_at(o, 3, "text", NULL),
			    "<file name=\"n.txt\" type=\"text/plain\">\nh\xc3\xa9llo\n</file>");
	assert_string_equal(str_at(o, 4, "text", NULL),
			    "<file name=\"src\" type=\"application/x-directory\">\na.c\n</file>");
	assert_non_null(strstr(str_at(o, 5, "text", NULL), "[Attached text/plain: bad.txt (not sent"));
	cJSON_Delete(o);

	cJSON *a = user_content(WIRE_ANTHROPIC, msgs, 0);
	assert_int_equal(cJSON_GetArraySize(a), 6);
	assert_string_equal(str_at(a, 0, "type", NULL), "text");
	assert_string_equal(str_at(a, 1, "type", NULL), "image");
	assert_string_equal(str_at(a, 1, "source", "type"), "base64");
	assert_string_equal(str_at(a, 1, "source", "media_type"), "image/png");
	assert_string_equal(str_at(a, 1, "source", "data"), "iVBORw0KGgo=");
	assert_string_equal(str_at(a, 2, "type", NULL), "document");
	assert_string_equal(str_at(a, 2, "source", "media_type"), "application/pdf");
	assert_string_equal(str_at(a, 2, "source", "data"), "JVBERi0=");
	assert_string_equal(str_at(a, 2, "title", NULL), "d.pdf");
	assert_string_equal(str_at(a, 3, "text", NULL),
			    "<file name=\"n.txt\" type=\"text/plain\">\nh\xc3\xa9llo\n</file>");
	cJSON_Delete(a);

	/* a model that takes neither: notes, for both formats */
	for (int k = 0; k < 2; k++) {
		cJSON *c = user_content(k ? WIRE_ANTHROPIC : WIRE_OPENAI, msgs,
					LLM_FILES_IMAGE | LLM_FILES_PDF);
		assert_string_equal(str_at(c, 1, "text", NULL), "[Attached image/png: a.png (not "
				    "sent: the model does not take images)]");
		assert_string_equal(str_at(c, 2, "text", NULL), "[Attached application/pdf: d.pdf "
				    "(not sent: the model does not take PDFs)]");
		assert_non_null(strstr(str_at(c, 3, "text", NULL), "h\xc3\xa9llo"));
		cJSON_Delete(c);
	}
	/* only images refused: the PDF still goes */
	cJSON *c = user_content(WIRE_OPENAI, msgs, LLM_FILES_IMAGE);
	assert_string_equal(str_at(c, 2, "type", NULL), "file");
	cJSON_Delete(c);
	cJSON_Delete(msgs);

	/* without files a user message keeps its plain string content */
	msgs = cJSON_Parse("[{\"role\":\"user\",\"content\":\"plain\",\"files\":[]}]");
	c = user_content(WIRE_OPENAI, msgs, 0);
	assert_string_equal(cJSON_GetStringValue(c), "plain");
	cJSON_Delete(c);
	cJSON_Delete(msgs);
	/* a file-only message: no empty text block */
	msgs = cJSON_Parse("[{\"role\":\"user\",\"content\":\"\",\"files\":[{\"mime\":"
			   "\"image/gif\",\"url\":\"data:image/gif;base64,R0lGODlh\"}]}]");
	for (int k = 0; k < 2; k++) {
		c = user_content(k ? WIRE_ANTHROPIC : WIRE_OPENAI, msgs, 0);
		assert_int_equal(cJSON_GetArraySize(c), 1);
		assert_string_equal(str_at(c, 0, "type", NULL), k ? "image" : "image_url");
		cJSON_Delete(c);
	}
	cJSON_Delete(msgs);
}

/* A request's params go over the configured options, but never over what the wire
 * format owns; extra headers are refused where they would break or hijack the request. */
static void request_params_override_options_but_not_owned_keys(void **state)
{
	cJSON *msgs = history();
	cJSON *opts = cJSON_Parse("{\"temperature\":0.5,\"top_p\":0.9}");
	cJSON *params = cJSON_Parse("{\"temperature\":0.1,\"metadata\":{\"user\":\"u1\"},"
				    "\"model\":\"evil\",\"stream\":false,\"messages\":[],"
				    "\"tools\":[],\"system\":\"evil\"}");
	struct llm_request rq = {.model = "m1", .system = "be brief", .messages = msgs,
				 .params = params};
	struct err e = {0};
	for (int k = 0; k < 2; k++) {
		char *body = wire_request(k ? WIRE_ANTHROPIC : WIRE_OPENAI, &rq, opts, &e);
		cJSON *j = cJSON_Parse(body);
		assert_int_equal(cJSON_GetObjectItem(j, "temperature")->valuedouble * 10, 1);
		assert_int_equal(cJSON_GetObjectItem(j, "top_p")->valuedouble * 10, 9);
		assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "metadata"), "user")
					    ->valuestring, "u1");
		assert_string_equal(cJSON_GetObjectItem(j, "model")->valuestring, "m1");
		assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "stream")));
		assert_true(cJSON_GetArraySize(cJSON_GetObjectItem(j, "messages")) >= 3);
		assert_null(cJSON_GetObjectItem(j, "tools"));
		const cJSON *sys = cJSON_GetObjectItem(j, "system");
		assert_true(k ? !strcmp(sys->valuestring, "be brief") : sys == NULL);
		cJSON_Delete(j);
		free(body);
	}
	cJSON_Delete(msgs);
	cJSON_Delete(opts);
	cJSON_Delete(params);
	assert_true(wire_header_allowed("x-trace-id", "abc 123"));
	assert_true(wire_header_allowed("OpenAI-Beta", "assistants=v2\tx"));
	static const char *const names[] = {"Content-Type", "content-length", "HOST",
		"Authorization", "X-Api-Key", "Connection", "Transfer-Encoding", "Proxy-Authorization",
		"a:b", "a b", "a\r\nb", "", "Expect", "Accept"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (wire_header_allowed(names[i], "v"))
			fail_msg("header name \"%s\" was allowed", names[i]);
	assert_false(wire_header_allowed("x-ok", "a\r\nInjected: 1"));
	assert_false(wire_header_allowed("x-ok", "a\nb"));
	assert_false(wire_header_allowed("x-ok", NULL));
}

/* Scratch parses (the arena behind stream chunks) give the trees cJSON_Parse gives,
 * also when a document outgrows the arena, and one tree after another reuses it. */
static void scratch_parses_equal_heap_parses(void **state)
{
	(void)state;
	struct jw big;
	jw_init(&big);
	jw_arr(&big);
	for (int i = 0; i < 5000; i++) {
		jw_obj(&big);
		jw_kint(&big, "i", i);
		jw_kstr(&big, "s", "text with \"quotes\" and \u00e9");
		jw_obj_end(&big);
	}
	jw_arr_end(&big);
	const char *docs[] = {"{\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"n\":1.5}",
			      big.buf, "[1,2,{\"a\":null,\"b\":true}]", "{\"bad\":", "{}"};
	for (int round = 0; round < 3; round++) {
		for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
			cJSON *h = cJSON_Parse(docs[i]);
			cJSON *a = jsonin_parse_scratch(docs[i], strlen(docs[i]));
			assert_true((h == NULL) == (a == NULL));
			if (h) {
				char *ph = cJSON_PrintUnformatted(h), *pa = cJSON_PrintUnformatted(a);
				assert_string_equal(ph, pa);
				cJSON_free(ph);
				cJSON_free(pa);
			}
			cJSON_Delete(a);
			cJSON_Delete(h);
		}
	}
	jw_free(&big);
}

/* retry-after in all its forms, and values that must neither overflow nor misparse. */
static void retry_after_parses_seconds_ms_and_dates_without_overflow(void **state)
{
	const int64_t now = 1700000000000LL; /* 2023-11-14T22:13:20Z */
	static const struct {
		const char *v;
		int64_t unit, want;
	} cases[] = {
		{"1", 1000, 1000},
		{" 3600\r\n", 1000, 3600000},
		{"0.25", 1000, 250},
		{".5", 1000, 500},
		{"1.0001", 1000, 1001}, /* rounded up */
		{"0", 1000, 0},
		{"50", 1, 50},
		{"2.5", 1, 3},
		{"9223372036854775", 1000, 9223372036854775000LL},
		{"9223372036854776", 1000, INT64_MAX},
		{"99999999999999999", 1000, INT64_MAX},
		{"99999999999999999999999", 1, INT64_MAX},
		{"99999999999999999999999999999999999999.9", 1000, INT64_MAX},
		{"Tue, 14 Nov 2023 22:13:30 GMT", 1000, 10000},
		{"Wed, 21 Oct 2015 07:28:00 GMT", 1000, 0},
		{"Fri, 31 Dec 2100 23:59:59 GMT", 1000, 4133980799000LL - now},
		{"Tue, 14 Nov 2023 22:13:30 GMT", 1, -1},
		{"Tuesday, 14-Nov-23 22:13:30 GMT", 1000, -1}, /* RFC 850: not read */
		{"Tue Nov 14 22:13:30 2023", 1000, -1},        /* asctime: not read */
		{"Tue, 14 Nov 2023 22:13:30 PST", 1000, -1},
		{"Tue, 14 Foo 2023 22:13:30 GMT", 1000, -1},
		{"-5", 1000, -1},
		{"5s", 1000, -1},
		{"1e3", 1000, -1},
		{".", 1000, -1},
		{"", 1000, -1},
		{"   ", 1000, -1},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t got = wire_retry_after_ms(cases[i].v, strlen(cases[i].v), cases[i].unit, now);
		if (got != cases[i].want)
			fail_msg("retry-after \"%s\" (unit %lld): %lld, want %lld", cases[i].v,
				 (long long)cases[i].unit, (long long)got, (long long)cases[i].want);
	}
	/* not NUL-terminated: only len bytes count */
	assert_int_equal(wire_retry_after_ms("12345", 2, 1000, now), 12000);
}

/* OpenAI's prompt_tokens counts the cached tokens too; input is the rest (OpenCode's
 * shape, and Anthropic's input_tokens), so input + cache.read is the prompt. */
static void openai_cached_tokens_are_not_counted_twice(void **state)
{
	static const char stream[] =
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"}}]}\n\n"
		"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1000,\"completion_tokens\":7,"
		"\"prompt_tokens_details\":{\"cached_tokens\":600}}}\n\n"
		"data: [DONE]\n\n";
	struct result r;
	parse(&r, WIRE_OPENAI, stream, NULL, 0);
	assert_int_equal(r.ws.usage.input, 400);
	assert_int_equal(r.ws.usage.cache_read, 600);
	assert_int_equal(r.ws.usage.output, 7);
	result_free(&r);
}

/* The providers' own words for a request over the context window, and nothing else. */
static void context_overflow_is_told_from_other_errors(void **state)
{
	static const char *const over[] = {
		"{\"error\":{\"message\":\"This model's maximum context length is 128000 tokens. "
		"However, your messages resulted in 130512 tokens. Please reduce the length of the "
		"messages.\",\"type\":\"invalid_request_error\",\"param\":\"messages\","
		"\"code\":\"context_length_exceeded\"}}",
		"{\"error\":{\"message\":\"too long\",\"code\":\"context_length_exceeded\"}}",
		"{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":"
		"\"prompt is too long: 208310 tokens > 200000 maximum\"}}",
		"input length and `max_tokens` exceed context limit: 197264 + 8192 > 200000, "
		"decrease input length or `max_tokens` and try again",
		"Prompt Is Too Long",
	};
	static const char *const other[] = {
		"{\"error\":{\"message\":\"Rate limit reached\",\"type\":\"rate_limit_error\"}}",
		"{\"error\":{\"message\":\"The model `x` does not exist\",\"code\":"
		"\"model_not_found\"}}",
		"max_tokens: 100000 > 64000, which is the maximum allowed number of output tokens",
		"", NULL,
	};
	for (size_t i = 0; i < sizeof(over) / sizeof(over[0]); i++)
		assert_true(wire_context_overflow(over[i]));
	for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++)
		assert_false(wire_context_overflow(other[i]));
}

int main(void)
{
	jsonin_init(); /* as agentgate runs: stream chunks parsed in the scratch arena */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(scratch_parses_equal_heap_parses),
		cmocka_unit_test(openai_stream_parses_the_same_at_every_split),
		cmocka_unit_test(anthropic_stream_parses_the_same_at_every_split),
		cmocka_unit_test(stream_errors_are_reported_with_retryability),
		cmocka_unit_test(output_stops_at_max_output),
		cmocka_unit_test(requests_take_each_providers_shape),
		cmocka_unit_test(files_take_each_providers_shape),
		cmocka_unit_test(request_params_override_options_but_not_owned_keys),
		cmocka_unit_test(retry_after_parses_seconds_ms_and_dates_without_overflow),
		cmocka_unit_test(openai_cached_tokens_are_not_counted_twice),
		cmocka_unit_test(context_overflow_is_told_from_other_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
