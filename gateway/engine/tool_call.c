/* tool_call: how a running tool call ends or reports progress, as the tool sees it
 * (tool.h). Calls are found by id, never by a pointer a tool kept: a completion for a
 * call that has ended or was cancelled finds nothing and is dropped (and counted). One
 * from another thread crosses to the loop through its inbox. The call's part is saved
 * and announced; when the turn's last call ends, the agent loop continues (step.c)
 * from a timer, outside the tool's own callback. Tool hooks run here too, before the
 * call starts and before its end is saved, so what they change is what is stored. */
#include "engine_int.h"

#include <stdlib.h>
#include <string.h>

void toolrun_finish(struct toolrun *r)
{
	struct turn *t = r->t;
	struct engine *E = t->s->E;
	r->finished = 1;
	r->p->end = now_ms();
	/* an ask it left waiting has no one to act on its answer now */
	permission_call_ended(E, r->pub.id, "the tool call ended before the permission was "
			      "answered");
	toolrun_hooks(r, HOOK_TOOL_AFTER, NULL, 0); /* before the result is saved and shown */
	part_save(E, r->p);
	if (--t->tools_pending == 0)
		timer_arm_us(&t->cont, 1); /* continue outside the tool's own callback */
}

int toolrun_hooks(struct toolrun *r, enum hook_point at, char *why, size_t why_len)
{
	struct engine *E = r->t->s->E;
	if (!hooks_any(E, at))
		return 0;
	struct part *p = r->p;
	struct hook_tool_run ht = {
		.pub = {.tool = p->tool, .call_id = p->call_id, .input = r->input},
		.at = at, .r = r,
	};
	if (at == HOOK_TOOL_AFTER) {
		ht.pub.output = p->ts == TS_COMPLETED ? p->output : NULL;
		ht.pub.error = p->ts == TS_ERROR ? p->error : NULL;
	}
	struct hook_ctx c;
	hooks_ctx(r->t->s, r->t, &c);
	return hooks_run(E, at, &c, &ht.pub, why, why_len);
}

/* Replaces *dst with a copy of v (NULL keeps the old value). */
static void set_str(char **dst, const char *v)
{
	if (!v)
		return;
	free(*dst);
	*dst = strdup(v);
}

/* ---- calls by id ---- */

#define CALL_BUCKETS (sizeof(((struct engine *)0)->calls) / sizeof(struct toolrun *))

void toolrun_track(struct engine *E, struct toolrun *r)
{
	r->pub.id = ++E->next_call_id;
	struct toolrun **b = &E->calls[r->pub.id % CALL_BUCKETS];
	r->hnext = *b;
	*b = r;
}

void toolrun_forget(struct engine *E, struct toolrun *r)
{
	for (struct toolrun **pp = &E->calls[r->pub.id % CALL_BUCKETS]; *pp; pp = &(*pp)->hnext) {
		if (*pp == r) {
			*pp = r->hnext;
			return;
		}
	}
}

struct toolrun *toolrun_find(struct engine *E, uint64_t id)
{
	struct toolrun *r = E->calls[id % CALL_BUCKETS];
	while (r && r->pub.id != id)
		r = r->hnext;
	return r && !r->finished ? r : NULL;
}

/* The call id names while it still runs; NULL (and the completion counted as dropped)
 * when it has ended, was cancelled, or never was. */
static struct toolrun *live(struct engine *E, uint64_t id)
{
	struct toolrun *r = toolrun_find(E, id);
	if (!r)
		E->calls_dropped++;
	return r;
}

static void end_call(struct toolrun *r, int ok, const char *text, const char *title,
		     const char *metadata_json)
{
	r->p->ts = ok ? TS_COMPLETED : TS_ERROR;
	if (ok)
		set_str(&r->p->output, text ? text : "");
	else
		set_str(&r->p->error, text ? text : "tool failed");
	set_str(&r->p->title, title);
	set_str(&r->p->meta, metadata_json);
	toolrun_finish(r);
}

void tool_call_done(struct tool_call *c, const char *output, const char *title,
		    const char *metadata_json)
{
	tool_done(c->E, c->id, output, title, metadata_json);
}

void tool_call_fail(struct tool_call *c, const char *error, const char *metadata_json)
{
	tool_fail(c->E, c->id, error, metadata_json);
}

static void progress(struct toolrun *r, const char *title, const char *metadata_json)
{
	set_str(&r->p->title, title);
	set_str(&r->p->meta, metadata_json);
	part_save(r->t->s->E, r->p);
}

void tool_call_set_metadata(struct tool_call *c, const char *title, const char *metadata_json)
{
	struct toolrun *r = live(c->E, c->id);
	if (r)
		progress(r, title, metadata_json);
}

struct loop *tool_call_loop(struct tool_call *c)
{
	return c->E->L;
}

/* ---- completions from any thread ---- */

enum { END_FAIL, END_DONE, PROGRESS };

struct completion {
	struct engine *E;
	uint64_t id;
	int ok; /* END_FAIL, END_DONE, or PROGRESS (the call goes on) */
	char *text, *title, *meta;
};

static void complete(void *arg)
{
	struct completion *m = arg;
	struct toolrun *r = live(m->E, m->id);
	if (r && m->ok == PROGRESS)
		progress(r, m->title, m->meta);
	else if (r)
		end_call(r, m->ok, m->text, m->title, m->meta);
	free(m->text);
	free(m->title);
	free(m->meta);
	free(m);
}

static int post_completion(struct engine *E, uint64_t id, int ok, const char *text,
			   const char *title, const char *meta)
{
	if (loop_is_current(E->L)) {
		struct toolrun *r = live(E, id);
		if (!r)
			return -1;
		if (ok == PROGRESS)
			progress(r, title, meta);
		else
			end_call(r, ok, text, title, meta);
		return 0;
	}
	struct completion *m = calloc(1, sizeof(*m));
	if (!m)
		return -1;
	*m = (struct completion){E, id, ok, text ? strdup(text) : NULL,
				 title ? strdup(title) : NULL, meta ? strdup(meta) : NULL};
	if (loop_post(E->L, complete, m)) {
		free(m->text);
		free(m->title);
		free(m->meta);
		free(m);
		return -1;
	}
	return 0;
}

int tool_done(struct engine *E, uint64_t id, const char *output, const char *title,
	      const char *metadata_json)
{
	return post_completion(E, id, END_DONE, output, title, metadata_json);
}

int tool_fail(struct engine *E, uint64_t id, const char *error, const char *metadata_json)
{
	return post_completion(E, id, END_FAIL, error, NULL, metadata_json);
}

int tool_progress(struct engine *E, uint64_t id, const char *title, const char *metadata_json)
{
	return post_completion(E, id, PROGRESS, NULL, title, metadata_json);
}

uint64_t tool_dropped(struct engine *E)
{
	return E->calls_dropped;
}
