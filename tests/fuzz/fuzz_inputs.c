/* Fuzz target for what clients and providers send that is parsed before anything else
 * checks it: request bodies (jsonin_parse, then the prompt and model fields of api.c's
 * parser, then the JSON-RPC envelope fields) and provider stream events (wire_event for
 * both formats, fed through the SSE parser) and permission rules (a config section
 * and the subjects an ask is judged on) and a prompt's data: URLs (decoded, then sent as
 * an attachment in both wire formats). The first byte picks the target. Built
 * with libFuzzer under clang (fuzz_inputs) and, for CI with gcc, driven by
 * test_fuzz_smoke with seeded random inputs. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jsonin.h"
#include "media.h"
#include "permrule.h"
#include "sse.h"
#include "wire.h"

/* What the inputs reached: bodies that parsed and bodies refused, stream events. The
 * smoke test checks its mutations exercise both sides. */
unsigned long fuzz_bodies_parsed, fuzz_bodies_refused, fuzz_stream_events;
unsigned long fuzz_rules_parsed, fuzz_rules_matched;
unsigned long fuzz_urls_parsed, fuzz_urls_refused;

static void on_text(void *arg, int reasoning, const char *s, size_t n)
{
	(void)arg;
	(void)reasoning;
	(void)s;
	(void)n;
}

static int on_event(void *arg, const struct sse_event *ev)
{
	struct wire_out out = {on_text, NULL};
	fuzz_stream_events++;
	wire_event(arg, ev->type, ev->data, ev->data_len, &out);
	return 0;
}

static void body(const uint8_t *data, size_t size)
{
	struct err e = {0};
	cJSON *j = jsonin_parse((const char *)data, size, &e);
	if (!j) {
		fuzz_bodies_refused++;
		return;
	}
	fuzz_bodies_parsed++;
	const char *s;
	long long n;
	int b;
	jsonin_str(j, "sessionID", 1, &s, &e);
	jsonin_str(j, "text", 0, &s, &e);
	jsonin_int(j, "limit", 0, &n, &e);
	jsonin_bool(j, "wait", &b, &e);
	const cJSON *parts = cJSON_GetObjectItemCaseSensitive(j, "parts"), *it;
	cJSON_ArrayForEach(it, parts)
		jsonin_str(it, "text", 0, &s, &e);
	char *m = wire_error_message((const char *)data, size);
	free(m);
	cJSON_Delete(j);
}

static void stream(enum wire_kind kind, const uint8_t *data, size_t size)
{
	struct wire_state w;
	struct sse_parser p;
	wire_init(&w, kind);
	sse_init(&p, 4096, on_event, &w);
	size_t cut = size ? data[0] % (size + 1) : 0;
	sse_feed(&p, (const char *)data, cut);
	sse_feed(&p, (const char *)data + cut, size - cut);
	sse_finish(&p);
	for (int i = 0; i < wire_tool_count(&w); i++)
		(void)wire_tool_at(&w, i);
	sse_free(&p);
	wire_free(&w);
}

/* The first line is a permission config section (JSON), each other line a subject: the
 * line is also a wildcard matched against the next one. */
static void rules(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1);
	if (!buf)
		return;
	memcpy(buf, data, size);
	buf[size] = 0;
	size_t first = strcspn(buf, "\n");
	struct err e = {0};
	struct perm_rules R = {0};
	cJSON *subjects = cJSON_CreateArray();
	for (char *line = buf + first; *line; line += strcspn(line, "\n")) {
		*line++ = 0;
		char *next = line + strcspn(line, "\n");
		char keep = *next;
		*next = 0;
		fuzz_rules_matched += (unsigned long)perm_match(line, next + (keep != 0));
		cJSON_AddItemToArray(subjects, cJSON_CreateString(line));
		*next = keep;
	}
	cJSON *section = jsonin_parse(buf, strlen(buf), &e);
	if (section && perm_rules_parse(&R, section, "/home/fuzz", "fuzz", &e) == 0) {
		const struct perm_rules *sets[] = {&R};
		struct perm_hit hit;
		char why[256];
		fuzz_rules_parsed++;
		perm_eval(sets, 1, "bash", subjects, &hit);
		perm_hit_describe(&hit, why, sizeof(why));
		perm_eval(sets, 1, "write", subjects, &hit);
	}
	perm_rules_free(&R);
	cJSON_Delete(section);
	cJSON_Delete(subjects);
	free(buf);
}

/* A data: URL (the first byte picks the bound and the refused kinds); what decodes goes
 * back out as an attachment of a user message in both wire formats. */
static void data_url(const uint8_t *data, size_t size)
{
	if (size < 1)
		return;
	char *url = malloc(size);
	if (!url)
		return;
	memcpy(url, data + 1, size - 1);
	url[size - 1] = 0;
	struct media_data d;
	char why[256];
	size_t max = data[0] & 1 ? 64 : 0;
	if (media_data_parse(url, max, &d, why, sizeof(why))) {
		fuzz_urls_refused++;
		free(url);
		return;
	}
	fuzz_urls_parsed++;
	const char *mime = *d.mime ? d.mime : "text/plain";
	(void)media_sniff(d.bytes, d.len);
	(void)media_utf8_text(d.bytes, d.len);
	char *canon = media_data_url(mime, d.bytes, d.len);
	cJSON *msgs = cJSON_CreateArray(), *m = cJSON_CreateObject(), *files = cJSON_CreateArray();
	cJSON *f = cJSON_CreateObject();
	cJSON_AddStringToObject(f, "mime", mime);
	cJSON_AddStringToObject(f, "url", data[0] & 2 ? url : canon ? canon : "");
	cJSON_AddItemToArray(files, f);
	cJSON_AddStringToObject(m, "role", "user");
	cJSON_AddStringToObject(m, "content", "");
	cJSON_AddItemToObject(m, "files", files);
	cJSON_AddItemToArray(msgs, m);
	struct llm_request rq = {.model = "m", .messages = msgs, .files_refused = data[0] >> 2 & 3};
	struct err e = {0};
	for (int k = 0; k < 2; k++)
		free(wire_request(k ? WIRE_ANTHROPIC : WIRE_OPENAI, &rq, NULL, &e));
	cJSON_Delete(msgs);
	free(canon);
	media_data_free(&d);
	free(url);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 5) {
	case 0: body(data + 1, size - 1); break;
	case 1: stream(WIRE_OPENAI, data + 1, size - 1); break;
	case 2: stream(WIRE_ANTHROPIC, data + 1, size - 1); break;
	case 3: rules(data + 1, size - 1); break;
	default: data_url(data + 1, size - 1); break;
	}
	return 0;
}
