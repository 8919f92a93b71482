#include "command.h"
#include "engine_int.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void command_clear(struct command *c)
{
	free(c->name);
	free(c->template);
	free(c->description);
	free(c->agent);
	free(c->model);
}

void commands_free(struct commands *K)
{
	for (int i = 0; i < K->n; i++)
		command_clear(&K->v[i]);
	free(K->v);
	memset(K, 0, sizeof(*K));
}

const struct command *commands_find(const struct commands *K, const char *name)
{
	for (int i = 0; name && i < K->n; i++)
		if (!strcmp(K->v[i].name, name))
			return &K->v[i];
	return NULL;
}

/* An optional string member into *out (NULL when absent). */
static int opt_str(const cJSON *o, const char *k, char **out, const char *name, struct err *e)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	if (!v)
		return 0;
	if (!cJSON_IsString(v)) {
		err_set(e, ERR_INVALID, "config command.%.100s.%s must be a string", name, k);
		return -1;
	}
	*out = strdup(v->valuestring);
	if (!*out) {
		err_set(e, ERR_INTERNAL, "out of memory");
		return -1;
	}
	return 0;
}

static int check_refs(const struct command *c, const struct agents *A, struct err *e)
{
	if (c->agent && !agents_find(A, c->agent)) {
		err_set(e, ERR_INVALID, "config command.%.100s.agent: there is no agent \"%.100s\"",
			c->name, c->agent);
		return -1;
	}
	const char *slash = c->model ? strchr(c->model, '/') : NULL;
	if (c->model && (!slash || slash == c->model || !slash[1])) {
		err_set(e, ERR_INVALID, "config command.%.100s.model \"%.100s\" must be "
			"PROVIDER/MODEL", c->name, c->model);
		return -1;
	}
	return 0;
}

static int load_one(struct command *c, const cJSON *o, const struct agents *A, struct err *e)
{
	const char *name = o->string;
	if (!cJSON_IsObject(o)) {
		err_set(e, ERR_INVALID, "config command.%.100s must be an object {template, "
			"description?, agent?, model?, subtask?}", name);
		return -1;
	}
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "template");
	if (!cJSON_IsString(t)) {
		err_set(e, ERR_INVALID, "config command.%.100s.template %s", name,
			t ? "must be a string" : "is missing (the prompt the command sends)");
		return -1;
	}
	const cJSON *sub = cJSON_GetObjectItemCaseSensitive(o, "subtask");
	if (sub && !cJSON_IsBool(sub)) {
		err_set(e, ERR_INVALID, "config command.%.100s.subtask must be true or false", name);
		return -1;
	}
	c->subtask = sub ? cJSON_IsTrue(sub) : -1;
	c->name = strdup(name);
	c->template = strdup(t->valuestring);
	if (!c->name || !c->template) {
		err_set(e, ERR_INTERNAL, "out of memory");
		return -1;
	}
	return opt_str(o, "description", &c->description, name, e) ||
	       opt_str(o, "agent", &c->agent, name, e) ||
	       opt_str(o, "model", &c->model, name, e) || check_refs(c, A, e) ? -1 : 0;
}

int commands_load(struct commands *K, const cJSON *section, const struct agents *A,
		  struct err *e)
{
	memset(K, 0, sizeof(*K));
	if (!section)
		return 0;
	if (!cJSON_IsObject(section)) {
		err_set(e, ERR_INVALID, "config \"command\" must be an object {NAME: {template, "
			"...}}");
		return -1;
	}
	int n = cJSON_GetArraySize(section);
	K->v = calloc((size_t)n + 1, sizeof(*K->v));
	if (!K->v) {
		err_set(e, ERR_INTERNAL, "out of memory");
		return -1;
	}
	const cJSON *o;
	cJSON_ArrayForEach(o, section) {
		if (!*o->string) {
			err_set(e, ERR_INVALID, "config \"command\": a command's name is empty");
			return -1;
		}
		if (load_one(&K->v[K->n++], o, A, e))
			return -1;
	}
	return 0;
}

/* model_ref: the model as the v2 API's {id, providerID}, else as "provider/model". */
static void members(const struct command *c, int model_ref, struct jw *w)
{
	jw_kstr(w, "template", c->template);
	if (c->description)
		jw_kstr(w, "description", c->description);
	if (c->agent)
		jw_kstr(w, "agent", c->agent);
	if (c->model && model_ref)
		model_write_json(w, "model", c->model, "id");
	else if (c->model)
		jw_kstr(w, "model", c->model);
	if (c->subtask >= 0)
		jw_kbool(w, "subtask", c->subtask);
}

/* hints: the placeholders a client may prompt for ($1, $2, ..., $ARGUMENTS), in the
 * order they first appear. */
static void hints(const char *t, struct jw *w)
{
	char seen[64][16];
	int n = 0;
	jw_key(w, "hints");
	jw_arr(w);
	for (const char *p = strchr(t, '$'); p; p = strchr(p + 1, '$')) {
		size_t len = isdigit((unsigned char)p[1]) ? 1 + strspn(p + 1, "0123456789")
			     : !strncmp(p, "$ARGUMENTS", 10) ? 10 : 0;
		if (!len || len >= sizeof(seen[0]) || n == 64)
			continue;
		char h[16];
		memcpy(h, p, len);
		h[len] = 0;
		int dup = 0;
		for (int i = 0; i < n && !dup; i++)
			dup = !strcmp(seen[i], h);
		if (!dup) {
			memcpy(seen[n++], h, len + 1);
			jw_str(w, h);
		}
	}
	jw_arr_end(w);
}

void commands_write_json(const struct commands *K, struct jw *w)
{
	jw_arr(w);
	for (int i = 0; i < K->n; i++) {
		jw_obj(w);
		jw_kstr(w, "name", K->v[i].name);
		members(&K->v[i], 0, w);
		jw_kstr(w, "source", "command");
		hints(K->v[i].template, w);
		jw_obj_end(w);
	}
	jw_arr_end(w);
}

void commands_write_config(const struct commands *K, struct jw *w)
{
	jw_obj(w);
	for (int i = 0; i < K->n; i++) {
		jw_key(w, K->v[i].name);
		jw_obj(w);
		members(&K->v[i], 0, w);
		jw_obj_end(w);
	}
	jw_obj_end(w);
}

void commands_write_v2_json(const struct commands *K, struct jw *w)
{
	for (int i = 0; i < K->n; i++) {
		jw_obj(w);
		jw_kstr(w, "name", K->v[i].name);
		members(&K->v[i], 1, w);
		jw_obj_end(w);
	}
}

/* ---- expansion ---- */

struct words {
	char **v;
	int n;
};

static void words_free(struct words *W)
{
	for (int i = 0; i < W->n; i++)
		free(W->v[i]);
	free(W->v);
}

/* The length of "[Image N]" at s (case-insensitive), else 0. */
static size_t image_ref(const char *s)
{
	if (strncasecmp(s, "[image", 6) || !isspace((unsigned char)s[6]))
		return 0;
	size_t i = 6;
	while (isspace((unsigned char)s[i]))
		i++;
	size_t d = strspn(s + i, "0123456789");
	return d && s[i + d] == ']' ? i + d + 1 : 0;
}

/* The next word at *s: its bytes at *start, *len long (quotes dropped); 0 at the end. An
 * unclosed quote is skipped, as OpenCode's pattern skips it. */
static int next_word(const char **s, const char **start, size_t *len)
{
	for (;;) {
		const char *p = *s;
		while (isspace((unsigned char)*p))
			p++;
		if (!*p)
			return 0;
		size_t img = image_ref(p);
		const char *close = *p == '"' || *p == '\'' ? strchr(p + 1, *p) : NULL;
		if (img) {
			*start = p;
			*len = img;
			*s = p + img;
		} else if (close) {
			*start = p + 1;
			*len = (size_t)(close - p - 1);
			*s = close + 1;
		} else if (*p == '"' || *p == '\'') {
			*s = p + 1;
			continue;
		} else {
			*start = p;
			*len = strcspn(p, " \t\r\n\f\v\"'");
			*s = p + *len;
		}
		return 1;
	}
}

static int split(const char *args, struct words *W)
{
	const char *s = args, *start;
	size_t len;
	int cap = 0;
	memset(W, 0, sizeof(*W));
	while (next_word(&s, &start, &len)) {
		if (W->n == cap) {
			cap = cap ? cap * 2 : 8;
			char **v = realloc(W->v, (size_t)cap * sizeof(*v));
			if (!v)
				return -1;
			W->v = v;
		}
		if (!(W->v[W->n] = strndup(start, len)))
			return -1;
		W->n++;
	}
	return 0;
}

/* The number of the placeholder at p ("$12" → 12), or 0 when p is not one. */
static long placeholder(const char *p, size_t *len)
{
	if (p[0] != '$' || !isdigit((unsigned char)p[1]))
		return 0;
	*len = 1 + strspn(p + 1, "0123456789");
	long v = 0;
	for (size_t i = 1; i < *len && v < 1000000; i++)
		v = v * 10 + (p[i] - '0');
	return v;
}

static void put_words(struct jw *out, const struct words *W, long pos, long last)
{
	long i = pos - 1;
	if (i < 0 || i >= W->n)
		return;
	for (long j = i; j < (pos == last ? W->n : i + 1); j++) {
		if (j > i)
			jw_append(out, " ", 1);
		jw_append(out, W->v[j], strlen(W->v[j]));
	}
}

/* The template with $N replaced; *found set when it had any placeholder. */
static void positional(const char *t, const struct words *W, struct jw *out, int *found)
{
	long last = 0;
	size_t len;
	for (const char *p = strchr(t, '$'); p; p = strchr(p + 1, '$')) {
		long v = placeholder(p, &len);
		last = v > last ? v : last;
		*found |= isdigit((unsigned char)p[1]) != 0;
	}
	const char *p = t;
	while (*p) {
		const char *d = strchr(p, '$');
		if (!d) {
			jw_append(out, p, strlen(p));
			break;
		}
		jw_append(out, p, (size_t)(d - p));
		if (isdigit((unsigned char)d[1])) {
			put_words(out, W, placeholder(d, &len), last);
			p = d + len;
		} else {
			jw_append(out, d, 1);
			p = d + 1;
		}
	}
}

static void replace_all(const char *s, const char *what, const char *with, struct jw *out)
{
	size_t wl = strlen(what);
	for (const char *hit; (hit = strstr(s, what)); s = hit + wl) {
		jw_append(out, s, (size_t)(hit - s));
		jw_append(out, with, strlen(with));
	}
	jw_append(out, s, strlen(s));
}

static int blank(const char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	return !*s;
}

static char *trimmed(char *s)
{
	size_t a = 0, n = strlen(s);
	while (isspace((unsigned char)s[a]))
		a++;
	while (n > a && isspace((unsigned char)s[n - 1]))
		n--;
	memmove(s, s + a, n - a);
	s[n - a] = 0;
	return s;
}

char *command_expand(const char *template, const char *arguments)
{
	struct words W;
	struct jw a, b;
	int found = 0;
	jw_init(&a);
	jw_init(&b);
	char *out = NULL;
	if (!split(arguments ? arguments : "", &W)) {
		positional(template, &W, &a, &found);
		jw_append(&a, "", 0);
		replace_all(a.buf ? a.buf : "", "$ARGUMENTS", arguments ? arguments : "", &b);
		if (!found && !strstr(template, "$ARGUMENTS") && arguments && !blank(arguments)) {
			jw_append(&b, "\n\n", 2);
			jw_append(&b, arguments, strlen(arguments));
		}
		jw_append(&b, "", 0);
		size_t len;
		out = b.oom || a.oom ? NULL : jw_take(&b, &len);
	}
	words_free(&W);
	jw_free(&a);
	jw_free(&b);
	return out ? trimmed(out) : NULL;
}

/* ---- the event ---- */

void engine_command_executed(struct engine *E, const char *session_id, const char *name,
			     const char *arguments, const char *message_id)
{
	struct session *s = session_get(E, session_id);
	if (!s)
		return;
	struct bus_env env;
	session_env(s, s->cur, &env);
	bus_begin(E->B, &E->jw, "command.executed");
	jw_obj(&E->jw);
	jw_kstr(&E->jw, "name", name);
	jw_kstr(&E->jw, "sessionID", s->id);
	jw_kstr(&E->jw, "arguments", arguments);
	jw_kstr(&E->jw, "messageID", message_id);
	jw_obj_end(&E->jw);
	bus_publish(E->B, &E->jw, "command.executed", &env);
}
