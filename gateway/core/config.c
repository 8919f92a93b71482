#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_NUM_MAX 9007199254740992.0 /* 2^53 */

char *config_read_file(const char *path, const char *what, struct err *e)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		err_set(e, ERR_INVALID, "cannot read %s %s: %s", what, path, strerror(errno));
		return NULL;
	}
	char *buf = NULL;
	size_t len = 0, cap = 0;
	for (;;) {
		if (len + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 8192;
			char *nb = realloc(buf, cap);
			if (!nb)
				break;
			buf = nb;
		}
		size_t n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
		if (n == 0)
			break;
	}
	int bad = ferror(f);
	fclose(f);
	if (bad || !buf) {
		err_set(e, ERR_INVALID, "cannot read %s %s", what, path);
		free(buf);
		return NULL;
	}
	buf[len] = 0;
	return buf;
}

cJSON *config_parse(char *text)
{
	cJSON *j = cJSON_Parse(text);
	if (j)
		return j;
	/* // and block comments: cJSON_Minify drops them (and blanks), minding strings. The
	 * error offset then stays the one of the text as written, when that is where the
	 * problem is: only a text that parses once minified is taken. */
	char *copy = strdup(text);
	if (!copy)
		return NULL;
	cJSON_Minify(copy);
	j = cJSON_Parse(copy);
	free(copy);
	if (!j)
		cJSON_Parse(text); /* the error pointer into the text as written */
	return j;
}

int64_t config_parse_ms(const char *s)
{
	if (!s || !*s)
		return -1;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end || v <= 0)
		return -1;
	return v;
}

static int num_field(const cJSON *o, const char *k, int64_t *out, struct err *e,
		     const char *path)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	if (!v)
		return 0;
	/* past 2^53 a double is not an integer any more, and past 2^63 the cast is undefined */
	if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > CONFIG_NUM_MAX) {
		err_set(e, ERR_INVALID, "config %s: \"%s\" must be a non-negative number (at most "
			"2^53)", path, k);
		return -1;
	}
	*out = (int64_t)v->valuedouble;
	return 0;
}

/* limits.<k>: an integer from 1 to max, or a named error. */
static int limit_field(const cJSON *limits, const char *k, int64_t max, int64_t *out,
		       struct err *e, const char *path)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(limits, k);
	if (!v)
		return 0;
	if (!cJSON_IsNumber(v) || !(v->valuedouble >= 1) || v->valuedouble > (double)max ||
	    (double)(int64_t)v->valuedouble != v->valuedouble) {
		err_set(e, ERR_INVALID, "config %s: \"limits.%s\" must be an integer from 1 to "
			"%lld", path, k, (long long)max);
		return -1;
	}
	*out = (int64_t)v->valuedouble;
	return 0;
}

static int parse_limits(struct config *c, const char *path, struct err *e)
{
	const cJSON *limits = cJSON_GetObjectItemCaseSensitive(c->root, "limits");
	if (limits && !cJSON_IsObject(limits)) {
		err_set(e, ERR_INVALID, "config %s: \"limits\" must be an object", path);
		return -1;
	}
	/* 1 TiB of output and 10 years of wall clock: past any use, and far from what the
	 * timer arithmetic (microseconds in an int64) can hold */
	return limit_field(limits, "max_output_bytes", 1LL << 40, &c->max_output_bytes, e,
			   path) ||
	       limit_field(limits, "max_attempt_ms", 315360000000LL, &c->max_attempt_ms, e,
			   path) ||
	       limit_field(limits, "max_file_bytes", 1LL << 34, &c->max_file_bytes, e, path)
		       ? -1
		       : 0;
}

static int str_field(const cJSON *o, const char *k, char **out, struct err *e,
		     const char *path)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	if (!v)
		return 0;
	if (!cJSON_IsString(v)) {
		err_set(e, ERR_INVALID, "config %s: \"%s\" must be a string", path, k);
		return -1;
	}
	free(*out);
	*out = strdup(v->valuestring);
	return 0;
}

static void defaults(struct config *c)
{
	memset(c, 0, sizeof(*c));
	c->model = strdup(DEFAULT_MODEL);
	c->stall_ms = DEFAULT_STALL_MS;
	c->retry_max = 3;
	c->stall_retry_max = 1;
	c->retry_base_ms = 1000;
	c->retry_cap_ms = 30000;
	c->connect_timeout_ms = 30000;
	c->first_byte_timeout_ms = 120000;
	c->max_output_bytes = DEFAULT_MAX_OUTPUT_BYTES;
	c->max_attempt_ms = DEFAULT_MAX_ATTEMPT_MS;
	c->max_file_bytes = DEFAULT_MAX_FILE_BYTES;
	c->task_max_depth = 3;
	c->task_max_running = 4;
	c->task_budget_ms = 600000;
	c->event_keep = 200000;
	c->event_ring = 8192;
	c->bus_buffer_bytes = 64 << 20;
}

static int parse_numbers(struct config *c, const char *path, struct err *e)
{
	const cJSON *r = c->root;
	const cJSON *retry = cJSON_GetObjectItemCaseSensitive(r, "retry");
	const cJSON *task = cJSON_GetObjectItemCaseSensitive(r, "task");
	int64_t rmax = c->retry_max, smax = c->stall_retry_max;
	int64_t depth = c->task_max_depth, running = c->task_max_running;
	if (num_field(r, "stall_timeout_ms", &c->stall_ms, e, path) ||
	    num_field(r, "connect_timeout_ms", &c->connect_timeout_ms, e, path) ||
	    num_field(r, "first_byte_timeout_ms", &c->first_byte_timeout_ms, e, path) ||
	    num_field(r, "event_keep", &c->event_keep, e, path) ||
	    num_field(r, "event_ring", &c->event_ring, e, path) ||
	    num_field(r, "bus_buffer_bytes", &c->bus_buffer_bytes, e, path) ||
	    num_field(retry, "max", &rmax, e, path) ||
	    num_field(retry, "stall_max", &smax, e, path) ||
	    num_field(retry, "base_ms", &c->retry_base_ms, e, path) ||
	    num_field(retry, "cap_ms", &c->retry_cap_ms, e, path) ||
	    num_field(task, "max_depth", &depth, e, path) ||
	    num_field(task, "max_running", &running, e, path) ||
	    num_field(task, "budget_ms", &c->task_budget_ms, e, path))
		return -1;
	c->retry_max = (int)rmax;
	c->stall_retry_max = (int)smax;
	c->task_max_depth = (int)depth;
	c->task_max_running = (int)running;
	if (c->event_ring < 16)
		c->event_ring = 16;
	if (c->stall_ms <= 0) {
		err_set(e, ERR_INVALID, "config %s: \"stall_timeout_ms\" must be positive", path);
		return -1;
	}
	return 0;
}

int config_load(struct config *c, const char *path, struct err *e)
{
	defaults(c);
	if (!path) {
		c->root = cJSON_CreateObject();
		return c->root ? 0 : -1;
	}
	char *text = config_read_file(path, "config file", e);
	if (!text)
		return -1;
	c->root = config_parse(text);
	if (!c->root || !cJSON_IsObject(c->root)) {
		const char *at = cJSON_GetErrorPtr();
		long off = at && c->root == NULL ? (long)(at - text) : 0;
		err_set(e, ERR_INVALID, "config file %s is not a JSON object%s (near byte %ld)",
			path, c->root ? "" : ": parse error", off);
		cJSON_Delete(c->root);
		c->root = NULL;
		free(text);
		return -1;
	}
	free(text);
	const char *slash = strrchr(path, '/');
	c->dir = slash ? strndup(path, (size_t)(slash - path + (slash == path))) : strdup(".");
	const cJSON *prov = cJSON_GetObjectItemCaseSensitive(c->root, "providers");
	if (str_field(c->root, "model", &c->model, e, path) || parse_numbers(c, path, e) ||
	    parse_limits(c, path, e) ||
	    str_field(cJSON_GetObjectItemCaseSensitive(prov, "openai"), "base_url",
		      &c->openai_base_url, e, path) ||
	    str_field(cJSON_GetObjectItemCaseSensitive(prov, "anthropic"), "base_url",
		      &c->anthropic_base_url, e, path))
		return -1;
	return 0;
}

int config_apply_env(struct config *c, struct err *e)
{
	const char *s = getenv("AGENTGATE_STALL_TIMEOUT_MS");
	if (s) {
		int64_t v = config_parse_ms(s);
		if (v < 0) {
			err_set(e, ERR_INVALID,
				"AGENTGATE_STALL_TIMEOUT_MS=%s is not a positive number of ms", s);
			return -1;
		}
		c->stall_ms = v;
	}
	const char *o = getenv("OPENAI_BASE_URL"), *a = getenv("ANTHROPIC_BASE_URL");
	if (o && *o) {
		free(c->openai_base_url);
		c->openai_base_url = strdup(o);
	}
	if (a && *a) {
		free(c->anthropic_base_url);
		c->anthropic_base_url = strdup(a);
	}
	return 0;
}

const cJSON *config_provider(const struct config *c, const char *name)
{
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(c->root, "providers");
	return cJSON_GetObjectItemCaseSensitive(p, name);
}

void config_free(struct config *c)
{
	cJSON_Delete(c->root);
	free(c->dir);
	free(c->model);
	free(c->openai_base_url);
	free(c->anthropic_base_url);
	memset(c, 0, sizeof(*c));
}

static void replace(char **dst, const char *v)
{
	if (!v)
		return;
	free(*dst);
	*dst = strdup(v);
}

void config_apply_flags(struct config *c, const char *model, int64_t stall_ms,
			const char *openai_base_url, const char *anthropic_base_url)
{
	replace(&c->model, model);
	if (stall_ms > 0)
		c->stall_ms = stall_ms;
	replace(&c->openai_base_url, openai_base_url);
	replace(&c->anthropic_base_url, anthropic_base_url);
}
