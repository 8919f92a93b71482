/* The built-in tools: echo (returns its text) and sleep (waits, then returns), which
 * make tool round-trips observable without touching the machine. */
#include "loop.h"
#include "tool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLEEP_MAX_MS 600000

static void echo_run(struct tool_call *c, void *arg)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(c->input, "text");
	if (!cJSON_IsString(t)) {
		tool_call_fail(c, "echo: \"text\" must be a string", NULL);
		return;
	}
	tool_call_done(c, t->valuestring, "echo", NULL);
}

struct sleeper {
	struct timer t;
	struct tool_call *c;
	int64_t ms;
};

static void sleep_fired(struct timer *t)
{
	struct sleeper *s = container_of(t, struct sleeper, t);
	struct tool_call *c = s->c;
	char out[64];
	snprintf(out, sizeof(out), "slept %lld ms", (long long)s->ms);
	c->state = NULL;
	free(s);
	tool_call_done(c, out, "sleep", NULL);
}

/* "ms" as a number or a numeric string (models and templates produce both). */
static int64_t sleep_ms(const cJSON *in)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, "ms");
	if (cJSON_IsNumber(v))
		return (int64_t)v->valuedouble;
	if (cJSON_IsString(v)) {
		char *end;
		long long ms = strtoll(v->valuestring, &end, 10);
		return *v->valuestring && !*end ? ms : -1;
	}
	return -1;
}

static void sleep_run(struct tool_call *c, void *arg)
{
	int64_t ms = sleep_ms(c->input);
	if (ms < 0 || ms > SLEEP_MAX_MS) {
		tool_call_fail(c, "sleep: \"ms\" must be a number from 0 to 600000", NULL);
		return;
	}
	struct sleeper *s = calloc(1, sizeof(*s));
	if (!s) {
		tool_call_fail(c, "sleep: out of memory", NULL);
		return;
	}
	s->c = c;
	s->ms = ms;
	c->state = s;
	timer_init(&s->t, tool_call_loop(c), sleep_fired);
	timer_arm(&s->t, ms);
}

static void sleep_cancel(struct tool_call *c, void *arg)
{
	struct sleeper *s = c->state;
	if (!s)
		return;
	timer_cancel(&s->t);
	free(s);
	c->state = NULL;
}

int tools_register_builtin(struct tools *T)
{
	static const struct tool_def defs[] = {
		{"echo", "Returns the given text unchanged.",
		 "{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\"}},"
		 "\"required\":[\"text\"]}",
		 echo_run, NULL, NULL, NULL},
		{"sleep", "Waits for the given number of milliseconds, then returns.",
		 "{\"type\":\"object\",\"properties\":{\"ms\":{\"type\":\"integer\","
		 "\"minimum\":0,\"maximum\":600000}},\"required\":[\"ms\"]}",
		 sleep_run, sleep_cancel, NULL, NULL},
	};
	for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++)
		if (tools_register(T, &defs[i], "builtin"))
			return -1;
	return 0;
}
