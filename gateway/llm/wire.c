#include "wire.h"
#include "jsonin.h"
#include "jw.h"
#include "media.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

void wire_init(struct wire_state *w, enum wire_kind kind)
{
	memset(w, 0, sizeof(*w));
	w->kind = kind;
}

void wire_free(struct wire_state *w)
{
	for (int i = 0; i < WIRE_MAX_TOOLS; i++) {
		free(w->tools[i].id);
		free(w->tools[i].name);
		free(w->tools[i].args);
	}
	memset(w, 0, sizeof(*w));
}

/* ---- requests ---- */

/* ---- a user message's files ----
 * Images and PDFs go as the provider's own content blocks (their base64 data: URL),
 * text files and directory listings inline as text, and what the model does not take
 * (files_refused) or cannot be read as a note naming it. */

enum file_send { FS_IMAGE, FS_PDF, FS_TEXT };

static char *file_note(const char *mime, const char *name, const char *why)
{
	char *s = NULL;
	if (asprintf(&s, "[Attached %s: %s (not sent: %s)]", mime, name, why) < 0)
		return NULL;
	return s;
}

/* How file f goes: an image or PDF block, or text (*text, malloc'd). */
static enum file_send file_send(const cJSON *f, int refused, char **text)
{
	const char *mime = jsonin_get(f, "mime"), *url = jsonin_get(f, "url");
	const char *name = jsonin_get(f, "filename"), *m, *b64;
	size_t ml;
	*text = NULL;
	mime = mime ? mime : "application/octet-stream";
	name = name ? name : "file";
	enum media_kind k = media_kind_of(mime);
	if (!url || media_data_split(url, &m, &ml, &b64)) {
		*text = file_note(mime, name, "its content is not a base64 data: URL");
		return FS_TEXT;
	}
	if (k == MEDIA_IMAGE || k == MEDIA_PDF) {
		if (!(refused & (k == MEDIA_IMAGE ? LLM_FILES_IMAGE : LLM_FILES_PDF)))
			return k == MEDIA_IMAGE ? FS_IMAGE : FS_PDF;
		*text = file_note(mime, name, k == MEDIA_IMAGE ? "the model does not take images"
							      : "the model does not take PDFs");
		return FS_TEXT;
	}
	char why[128];
	size_t n;
	unsigned char *bytes = k == MEDIA_TEXT || k == MEDIA_DIR /* else never decoded */
		? media_b64_decode(b64, strlen(b64), &n, why, sizeof(why)) : NULL;
	if (!bytes || !media_utf8_text(bytes, n)) {
		*text = file_note(mime, name, "not text");
	} else if (asprintf(text, "<file name=\"%s\" type=\"%s\">\n%s%s</file>", name, mime,
			    (char *)bytes, n && bytes[n - 1] != '\n' ? "\n" : "") < 0) {
		*text = NULL;
	}
	free(bytes);
	return FS_TEXT;
}

static cJSON *text_block(const char *text)
{
	cJSON *b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "type", "text");
	cJSON_AddStringToObject(b, "text", text);
	return b;
}

/* OpenAI: a user message with files has an array content: its text, then each file as
 * an image_url, a file (PDF) or a text part. */
static void openai_user_content(cJSON *o, const char *content, const cJSON *files,
				int refused)
{
	cJSON *arr = cJSON_AddArrayToObject(o, "content");
	if (content && *content)
		cJSON_AddItemToArray(arr, text_block(content));
	const cJSON *f;
	cJSON_ArrayForEach(f, files) {
		char *text;
		enum file_send how = file_send(f, refused, &text);
		const char *url = jsonin_get(f, "url"), *name = jsonin_get(f, "filename");
		cJSON *b = NULL;
		if (how == FS_TEXT) {
			b = text_block(text ? text : "[Attached file]");
		} else if (how == FS_IMAGE) {
			b = cJSON_CreateObject();
			cJSON_AddStringToObject(b, "type", "image_url");
			cJSON_AddStringToObject(cJSON_AddObjectToObject(b, "image_url"), "url", url);
		} else {
			b = cJSON_CreateObject();
			cJSON_AddStringToObject(b, "type", "file");
			cJSON *file = cJSON_AddObjectToObject(b, "file");
			cJSON_AddStringToObject(file, "filename", name ? name : "file.pdf");
			cJSON_AddStringToObject(file, "file_data", url);
		}
		free(text);
		cJSON_AddItemToArray(arr, b);
	}
}

/* Anthropic: each file after the text, as an image or document block with a base64
 * source, or a text block. */
static void anthropic_files(cJSON *blocks, const cJSON *files, int refused)
{
	const cJSON *f;
	cJSON_ArrayForEach(f, files) {
		char *text;
		enum file_send how = file_send(f, refused, &text);
		if (how == FS_TEXT) {
			cJSON_AddItemToArray(blocks, text_block(text ? text : "[Attached file]"));
			free(text);
			continue;
		}
		const char *m, *b64, *name = jsonin_get(f, "filename");
		size_t ml;
		media_data_split(jsonin_get(f, "url"), &m, &ml, &b64);
		cJSON *b = cJSON_CreateObject(), *src = cJSON_CreateObject();
		char mime[128];
		snprintf(mime, sizeof(mime), "%.*s", (int)(ml < sizeof(mime) ? ml : 0), m);
		cJSON_AddStringToObject(b, "type", how == FS_IMAGE ? "image" : "document");
		cJSON_AddStringToObject(src, "type", "base64");
		cJSON_AddStringToObject(src, "media_type", mime);
		cJSON_AddStringToObject(src, "data", b64);
		cJSON_AddItemToObject(b, "source", src);
		if (how == FS_PDF && name)
			cJSON_AddStringToObject(b, "title", name);
		cJSON_AddItemToArray(blocks, b);
	}
}

static cJSON *openai_message(const cJSON *m, int refused)
{
	const char *role = jsonin_get(m, "role"), *content = jsonin_get(m, "content");
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "role", role ? role : "user");
	const cJSON *calls = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
	const cJSON *files = cJSON_GetObjectItemCaseSensitive(m, "files");
	if (role && !strcmp(role, "tool"))
		cJSON_AddStringToObject(o, "tool_call_id", jsonin_get(m, "tool_call_id"));
	if (cJSON_GetArraySize(files) > 0 && (!role || !strcmp(role, "user")))
		openai_user_content(o, content, files, refused);
	else if (content && *content)
		cJSON_AddStringToObject(o, "content", content);
	else
		cJSON_AddItemToObject(o, "content", calls ? cJSON_CreateNull() : cJSON_CreateString(""));
	if (cJSON_GetArraySize(calls) > 0) {
		cJSON *arr = cJSON_AddArrayToObject(o, "tool_calls");
		const cJSON *c;
		cJSON_ArrayForEach(c, calls) {
			cJSON *tc = cJSON_CreateObject(), *fn = cJSON_CreateObject();
			cJSON_AddStringToObject(tc, "id", jsonin_get(c, "id"));
			cJSON_AddStringToObject(tc, "type", "function");
			cJSON_AddStringToObject(fn, "name", jsonin_get(c, "name"));
			cJSON_AddStringToObject(fn, "arguments", jsonin_get(c, "arguments") ? jsonin_get(c, "arguments") : "{}");
			cJSON_AddItemToObject(tc, "function", fn);
			cJSON_AddItemToArray(arr, tc);
		}
	}
	return o;
}

static void openai_body(cJSON *b, const struct llm_request *rq)
{
	cJSON *msgs = cJSON_AddArrayToObject(b, "messages");
	if (rq->system && *rq->system) {
		cJSON *s = cJSON_CreateObject();
		cJSON_AddStringToObject(s, "role", "system");
		cJSON_AddStringToObject(s, "content", rq->system);
		cJSON_AddItemToArray(msgs, s);
	}
	const cJSON *m;
	cJSON_ArrayForEach(m, rq->messages)
		cJSON_AddItemToArray(msgs, openai_message(m, rq->files_refused));
	cJSON_AddBoolToObject(b, "stream", 1);
	cJSON *so = cJSON_AddObjectToObject(b, "stream_options");
	cJSON_AddBoolToObject(so, "include_usage", 1);
	if (cJSON_GetArraySize(rq->tools) == 0)
		return;
	cJSON *tools = cJSON_AddArrayToObject(b, "tools");
	const cJSON *t;
	cJSON_ArrayForEach(t, rq->tools) {
		cJSON *o = cJSON_CreateObject(), *fn = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "type", "function");
		cJSON_AddStringToObject(fn, "name", jsonin_get(t, "name"));
		cJSON_AddStringToObject(fn, "description", jsonin_get(t, "description"));
		cJSON_AddItemToObject(fn, "parameters",
				      cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(t, "parameters"), 1));
		cJSON_AddItemToObject(o, "function", fn);
		cJSON_AddItemToArray(tools, o);
	}
}

/* Anthropic wants alternating roles: consecutive blocks of one role share a message. */
static cJSON *anthropic_turn(cJSON *msgs, const char *role)
{
	cJSON *last = cJSON_GetArrayItem(msgs, cJSON_GetArraySize(msgs) - 1);
	if (last && !strcmp(jsonin_get(last, "role"), role))
		return cJSON_GetObjectItemCaseSensitive(last, "content");
	cJSON *m = cJSON_CreateObject();
	cJSON_AddStringToObject(m, "role", role);
	cJSON *content = cJSON_AddArrayToObject(m, "content");
	cJSON_AddItemToArray(msgs, m);
	return content;
}

static void anthropic_message(cJSON *msgs, const cJSON *m, int refused)
{
	const char *role = jsonin_get(m, "role"), *content = jsonin_get(m, "content");
	int tool = role && !strcmp(role, "tool"), assistant = role && !strcmp(role, "assistant");
	cJSON *blocks = anthropic_turn(msgs, assistant ? "assistant" : "user");
	cJSON *b = cJSON_CreateObject();
	if (tool) {
		cJSON_AddStringToObject(b, "type", "tool_result");
		cJSON_AddStringToObject(b, "tool_use_id", jsonin_get(m, "tool_call_id"));
		cJSON_AddStringToObject(b, "content", content ? content : "");
		cJSON_AddItemToArray(blocks, b);
		return;
	}
	if (content && *content) {
		cJSON_AddStringToObject(b, "type", "text");
		cJSON_AddStringToObject(b, "text", content);
		cJSON_AddItemToArray(blocks, b);
	} else {
		cJSON_Delete(b);
	}
	if (!assistant)
		anthropic_files(blocks, cJSON_GetObjectItemCaseSensitive(m, "files"), refused);
	const cJSON *c;
	cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(m, "tool_calls")) {
		cJSON *u = cJSON_CreateObject();
		const char *args = jsonin_get(c, "arguments");
		cJSON *input = args ? cJSON_Parse(args) : NULL;
		cJSON_AddStringToObject(u, "type", "tool_use");
		cJSON_AddStringToObject(u, "id", jsonin_get(c, "id"));
		cJSON_AddStringToObject(u, "name", jsonin_get(c, "name"));
		cJSON_AddItemToObject(u, "input", cJSON_IsObject(input) ? input : cJSON_CreateObject());
		if (!cJSON_IsObject(input))
			cJSON_Delete(input);
		cJSON_AddItemToArray(blocks, u);
	}
}

static void anthropic_body(cJSON *b, const struct llm_request *rq)
{
	if (rq->system && *rq->system)
		cJSON_AddStringToObject(b, "system", rq->system);
	cJSON *msgs = cJSON_AddArrayToObject(b, "messages");
	const cJSON *m;
	cJSON_ArrayForEach(m, rq->messages)
		anthropic_message(msgs, m, rq->files_refused);
	/* a message whose content ended up empty is refused by the API: drop it */
	for (int i = cJSON_GetArraySize(msgs) - 1; i >= 0; i--)
		if (!cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, i), "content")))
			cJSON_DeleteItemFromArray(msgs, i);
	cJSON_AddNumberToObject(b, "max_tokens", 8192);
	cJSON_AddBoolToObject(b, "stream", 1);
	if (cJSON_GetArraySize(rq->tools) == 0)
		return;
	cJSON *tools = cJSON_AddArrayToObject(b, "tools");
	const cJSON *t;
	cJSON_ArrayForEach(t, rq->tools) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", jsonin_get(t, "name"));
		cJSON_AddStringToObject(o, "description", jsonin_get(t, "description"));
		cJSON_AddItemToObject(o, "input_schema",
				      cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(t, "parameters"), 1));
		cJSON_AddItemToArray(tools, o);
	}
}

int wire_param_owned(const char *key)
{
	static const char *const owned[] = {"model", "messages", "stream", "tools", "system"};
	for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++)
		if (!strcmp(key, owned[i]))
			return 1;
	return 0;
}

/* The configured options may tune anything but the conversation and streaming. */
static int option_refused(const char *key)
{
	return !strcmp(key, "messages") || !strcmp(key, "stream");
}

/* Sets each member of from (an object, or NULL) at the body's top level, over what is
 * there, except the keys refused() names. */
static void merge(cJSON *b, const cJSON *from, int (*refused)(const char *key))
{
	const cJSON *it;
	cJSON_ArrayForEach(it, from) {
		if (!it->string || refused(it->string))
			continue;
		cJSON_DeleteItemFromObjectCaseSensitive(b, it->string);
		cJSON_AddItemToObject(b, it->string, cJSON_Duplicate(it, 1));
	}
}

static int is_tchar(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

int wire_header_allowed(const char *name, const char *value)
{
	static const char *const refused[] = {
		"content-type", "content-length", "host", "authorization", "x-api-key", "accept",
		"expect", "connection", "keep-alive", "te", "trailer", "transfer-encoding",
		"upgrade",
	};
	if (!name || !*name || !value || !strncasecmp(name, "proxy-", 6))
		return 0;
	for (const char *p = name; *p; p++)
		if (!is_tchar((unsigned char)*p))
			return 0;
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		if (!strcasecmp(name, refused[i]))
			return 0;
	for (const unsigned char *p = (const unsigned char *)value; *p; p++)
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			return 0;
	return 1;
}

char *wire_request(enum wire_kind kind, const struct llm_request *rq, const cJSON *options,
		   struct err *e)
{
	cJSON *b = cJSON_CreateObject();
	if (!b) {
		err_set(e, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	cJSON_AddStringToObject(b, "model", rq->model);
	if (kind == WIRE_OPENAI)
		openai_body(b, rq);
	else
		anthropic_body(b, rq);
	merge(b, options, option_refused);
	merge(b, rq->params, wire_param_owned);
	char *s = cJSON_PrintUnformatted(b);
	cJSON_Delete(b);
	if (!s)
		err_set(e, ERR_INTERNAL, "out of memory");
	return s;
}

/* ---- streams ---- */

static int append(struct wire_tool *t, const char *s, size_t n)
{
	if (t->args_len + n + 1 > t->args_cap) {
		size_t cap = t->args_cap ? t->args_cap * 2 : 128;
		while (cap < t->args_len + n + 1)
			cap *= 2;
		char *a = realloc(t->args, cap);
		if (!a)
			return -1;
		t->args = a;
		t->args_cap = cap;
	}
	memcpy(t->args + t->args_len, s, n);
	t->args_len += n;
	t->args[t->args_len] = 0;
	return 0;
}

/* Counts n bytes of output; 1 (and over_limit set) if that passes max_output. */
static int over(struct wire_state *w, size_t n)
{
	if (w->max_output && n > w->max_output - w->output) {
		w->over_limit = 1;
		return 1;
	}
	w->output += n;
	return 0;
}

static int emit(struct wire_state *w, const struct wire_out *out, int reasoning, const char *s)
{
	size_t n = strlen(s);
	if (over(w, n))
		return 1;
	out->text(out->arg, reasoning, s, n);
	return 0;
}

static int add_args(struct wire_state *w, struct wire_tool *t, const char *s)
{
	size_t n = strlen(s);
	if (over(w, n))
		return 1;
	return append(t, s, n);
}

static void set_once(char **dst, const char *v)
{
	if (v && *v && !*dst)
		*dst = strdup(v);
}

static void set_finish(struct wire_state *w, const char *reason)
{
	static const struct {
		const char *from, *to;
	} map[] = {
		{"stop", "stop"}, {"end_turn", "stop"}, {"stop_sequence", "stop"},
		{"tool_calls", "tool-calls"}, {"function_call", "tool-calls"},
		{"tool_use", "tool-calls"}, {"length", "length"}, {"max_tokens", "length"},
		{"content_filter", "content-filter"}, {"refusal", "content-filter"},
	};
	if (!reason)
		return;
	const char *to = "other";
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (!strcmp(map[i].from, reason))
			to = map[i].to;
	snprintf(w->finish, sizeof(w->finish), "%s", to);
}

static int openai_tool_delta(struct wire_state *w, const cJSON *tc)
{
	const cJSON *idx = cJSON_GetObjectItemCaseSensitive(tc, "index");
	int i = cJSON_IsNumber(idx) ? idx->valueint : 0;
	if (i < 0 || i >= WIRE_MAX_TOOLS)
		return 0;
	struct wire_tool *t = &w->tools[i];
	const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
	const char *args = jsonin_get(fn, "arguments");
	t->used = 1;
	set_once(&t->id, jsonin_get(tc, "id"));
	set_once(&t->name, jsonin_get(fn, "name"));
	return args ? add_args(w, t, args) : 0;
}

static void usage_num(const cJSON *o, const char *k, int64_t *dst)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	if (cJSON_IsNumber(v))
		*dst = (int64_t)v->valuedouble;
}

static int openai_event(struct wire_state *w, const cJSON *j, const struct wire_out *out)
{
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
	if (err) {
		snprintf(w->error, sizeof(w->error), "%s",
			 jsonin_get(err, "message") ? jsonin_get(err, "message") : "provider sent an error");
		w->error_retryable = 1;
		return 1;
	}
	const cJSON *usage = cJSON_GetObjectItemCaseSensitive(j, "usage");
	if (cJSON_IsObject(usage)) {
		usage_num(usage, "prompt_tokens", &w->usage.input);
		usage_num(usage, "completion_tokens", &w->usage.output);
		usage_num(cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens_details"),
			  "reasoning_tokens", &w->usage.reasoning);
		usage_num(cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens_details"),
			  "cached_tokens", &w->usage.cache_read);
		/* prompt_tokens counts the cached ones too; OpenCode's input does not (as
		 * Anthropic's input_tokens does not), so input + cache.read is the prompt */
		if (w->usage.cache_read > 0 && w->usage.cache_read <= w->usage.input)
			w->usage.input -= w->usage.cache_read;
	}
	const cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(ch, "delta");
	const char *r = jsonin_get(d, "reasoning_content") ? jsonin_get(d, "reasoning_content") : jsonin_get(d, "reasoning");
	if (r && *r && emit(w, out, 1, r))
		return 1;
	const char *c = jsonin_get(d, "content");
	if (c && *c && emit(w, out, 0, c))
		return 1;
	const cJSON *tc;
	cJSON_ArrayForEach(tc, cJSON_GetObjectItemCaseSensitive(d, "tool_calls")) {
		int rc = openai_tool_delta(w, tc);
		if (rc)
			return rc;
	}
	set_finish(w, jsonin_get(ch, "finish_reason"));
	return 0;
}

static int anthropic_block_start(struct wire_state *w, const cJSON *j)
{
	const cJSON *idx = cJSON_GetObjectItemCaseSensitive(j, "index");
	const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "content_block");
	int i = cJSON_IsNumber(idx) ? idx->valueint : -1;
	const char *type = jsonin_get(b, "type");
	if (i < 0 || i >= WIRE_MAX_TOOLS || !type || strcmp(type, "tool_use"))
		return 0;
	int slot = wire_tool_count(w);
	if (slot >= WIRE_MAX_TOOLS)
		return 0;
	struct wire_tool *t = &w->tools[slot];
	t->used = 1;
	set_once(&t->id, jsonin_get(b, "id"));
	set_once(&t->name, jsonin_get(b, "name"));
	w->block_tool[i] = slot + 1;
	return 0;
}

static int anthropic_delta(struct wire_state *w, const cJSON *j, const struct wire_out *out)
{
	const cJSON *idx = cJSON_GetObjectItemCaseSensitive(j, "index");
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "delta");
	const char *type = jsonin_get(d, "type");
	if (!type)
		return 0;
	if (!strcmp(type, "text_delta") && jsonin_get(d, "text") && *jsonin_get(d, "text"))
		return emit(w, out, 0, jsonin_get(d, "text"));
	if (!strcmp(type, "thinking_delta") && jsonin_get(d, "thinking") && *jsonin_get(d, "thinking"))
		return emit(w, out, 1, jsonin_get(d, "thinking"));
	if (!strcmp(type, "input_json_delta") && cJSON_IsNumber(idx) && idx->valueint >= 0 &&
	    idx->valueint < WIRE_MAX_TOOLS && w->block_tool[idx->valueint]) {
		const char *pj = jsonin_get(d, "partial_json");
		if (pj)
			return add_args(w, &w->tools[w->block_tool[idx->valueint] - 1], pj);
	}
	return 0;
}

static int anthropic_error(struct wire_state *w, const cJSON *j)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
	const char *type = jsonin_get(e, "type"), *msg = jsonin_get(e, "message");
	snprintf(w->error, sizeof(w->error), "%s%s%s", type ? type : "error", msg ? ": " : "",
		 msg ? msg : "");
	w->error_retryable = type && (!strcmp(type, "overloaded_error") ||
				      !strcmp(type, "api_error") ||
				      !strcmp(type, "rate_limit_error"));
	w->error_status = type && !strcmp(type, "overloaded_error") ? 529 : 0;
	return 1;
}

static int anthropic_event(struct wire_state *w, const char *type, const cJSON *j,
			   const struct wire_out *out)
{
	if (!type || !*type)
		type = jsonin_get(j, "type");
	if (!type)
		return 0;
	if (!strcmp(type, "message_start")) {
		const cJSON *u = cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(j, "message"), "usage");
		usage_num(u, "input_tokens", &w->usage.input);
		usage_num(u, "cache_read_input_tokens", &w->usage.cache_read);
		usage_num(u, "cache_creation_input_tokens", &w->usage.cache_write);
	} else if (!strcmp(type, "content_block_start")) {
		return anthropic_block_start(w, j);
	} else if (!strcmp(type, "content_block_delta")) {
		return anthropic_delta(w, j, out);
	} else if (!strcmp(type, "message_delta")) {
		set_finish(w, jsonin_get(cJSON_GetObjectItemCaseSensitive(j, "delta"), "stop_reason"));
		usage_num(cJSON_GetObjectItemCaseSensitive(j, "usage"), "output_tokens",
			  &w->usage.output);
	} else if (!strcmp(type, "message_stop")) {
		w->finished = 1;
	} else if (!strcmp(type, "error")) {
		return anthropic_error(w, j);
	}
	return 0;
}

int wire_event(struct wire_state *w, const char *type, const char *data, size_t len,
	       const struct wire_out *out)
{
	if (w->over_limit)
		return 1;
	if (w->kind == WIRE_OPENAI && len == 6 && !memcmp(data, "[DONE]", 6)) {
		w->finished = 1;
		return 0;
	}
	cJSON *j = jsonin_parse_scratch(data, len);
	if (!j) {
		w->malformed++;
		return 0; /* skipped: one bad line must not lose the rest of the reply */
	}
	int rc = w->kind == WIRE_OPENAI ? openai_event(w, j, out) : anthropic_event(w, type, j, out);
	cJSON_Delete(j);
	return rc;
}

int wire_tool_count(const struct wire_state *w)
{
	int n = 0;
	for (int i = 0; i < WIRE_MAX_TOOLS; i++)
		n += w->tools[i].used;
	return n;
}

const struct wire_tool *wire_tool_at(const struct wire_state *w, int i)
{
	for (int k = 0; k < WIRE_MAX_TOOLS; k++)
		if (w->tools[k].used && i-- == 0)
			return &w->tools[k];
	return NULL;
}

char *wire_error_message(const char *body, size_t len)
{
	cJSON *j = cJSON_ParseWithLength(body, len);
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
	const char *msg = cJSON_IsString(e) ? e->valuestring : jsonin_get(e, "message");
	if (!msg)
		msg = jsonin_get(j, "message");
	char *out = msg ? strdup(msg) : NULL;
	cJSON_Delete(j);
	return out;
}

int wire_context_overflow(const char *text)
{
	static const char *const says[] = {
		"context_length_exceeded", "maximum context length", "prompt is too long",
		"exceed context limit", "exceeds the context window", "context length exceeded",
		"context window exceeded",
	};
	for (size_t i = 0; text && i < sizeof(says) / sizeof(says[0]); i++)
		if (strcasestr(text, says[i]))
			return 1;
	return 0;
}

/* ---- retry-after ---- */

static int64_t sat_add(int64_t a, int64_t b)
{
	return a > INT64_MAX - b ? INT64_MAX : a + b;
}

/* "[digits][.digits]" times unit_ms, rounded up; -1 if it is not that. */
static int64_t delta_ms(const char *s, size_t len, int64_t unit_ms)
{
	size_t i = 0;
	int64_t whole = 0, frac = 0, den = 1;
	int digits = 0;
	for (; i < len && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
		int d = s[i] - '0';
		whole = whole > (INT64_MAX - d) / 10 ? INT64_MAX : whole * 10 + d;
	}
	if (i < len && s[i] == '.') {
		for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
			if (den < 1000000000) { /* finer than a nanosecond does not matter */
				frac = frac * 10 + (s[i] - '0');
				den *= 10;
			}
		}
	}
	if (!digits || i != len)
		return -1;
	int64_t ms = whole > INT64_MAX / unit_ms ? INT64_MAX : whole * unit_ms;
	return sat_add(ms, (frac * unit_ms + den - 1) / den);
}

/* IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") as epoch ms; -1 otherwise. The obsolete
 * RFC 850 and asctime forms are not read: such a header counts as absent. */
static int64_t http_date_ms(const char *s, size_t len)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	char buf[64], wday[4], mon[4], zone[4];
	int day, year, hh, mm, ss, used = 0;
	if (len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len);
	buf[len] = 0;
	if (sscanf(buf, "%3[A-Za-z], %2d %3[A-Za-z] %4d %2d:%2d:%2d %3[A-Z]%n", wday, &day, mon,
		   &year, &hh, &mm, &ss, zone, &used) != 8 || (size_t)used != len ||
	    strcmp(zone, "GMT"))
		return -1;
	const char *m = strstr(months, mon);
	if (!m || (m - months) % 3 || day < 1 || day > 31 || year < 1970 || hh > 23 || mm > 59 ||
	    ss > 60)
		return -1;
	struct tm tm = {.tm_year = year - 1900, .tm_mon = (int)(m - months) / 3, .tm_mday = day,
			.tm_hour = hh, .tm_min = mm, .tm_sec = ss};
	time_t t = timegm(&tm);
	return t == (time_t)-1 ? -1 : (int64_t)t * 1000;
}

int64_t wire_retry_after_ms(const char *value, size_t len, int64_t unit_ms, int64_t now_ms)
{
	while (len && (*value == ' ' || *value == '\t'))
		value++, len--;
	while (len && (value[len - 1] == ' ' || value[len - 1] == '\t' || value[len - 1] == '\r' ||
		       value[len - 1] == '\n'))
		len--;
	if (!len || unit_ms <= 0)
		return -1;
	if ((value[0] >= '0' && value[0] <= '9') || value[0] == '.')
		return delta_ms(value, len, unit_ms);
	if (unit_ms != 1000)
		return -1; /* retry-after-ms has no date form */
	int64_t at = http_date_ms(value, len);
	if (at < 0)
		return -1;
	return at > now_ms ? at - now_ms : 0;
}
