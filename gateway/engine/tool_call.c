/* tool_call: how a running tool call ends or reports progress, as the tool sees it
 * (tool.h). The call's part is saved and announced; when the turn's last call ends, the
 * agent loop continues (step.c) from a timer, outside the tool's own callback. Loop
 * thread only. */
#include "engine_int.h"

#include <stdlib.h>
#include <string.h>

void toolrun_finish(struct toolrun *r)
{
	struct turn *t = r->t;
	struct engine *E = t->s->E;
	r->finished = 1;
	r->p->end = now_ms();
	part_save(E, r->p);
	if (hooks_any(E, HOOK_TOOL_AFTER)) {
		struct hook_ctx c;
		struct hook_tool ht = {.tool = r->p->tool, .call_id = r->p->call_id,
				       .input = r->input,
				       .output = r->p->ts == TS_COMPLETED ? r->p->output : NULL,
				       .error = r->p->ts == TS_ERROR ? r->p->error : NULL};
		hooks_ctx(t->s, t, &c);
		hooks_run(E, HOOK_TOOL_AFTER, &c, &ht, NULL, 0);
	}
	if (--t->tools_pending == 0)
		timer_arm_us(&t->cont, 1); /* continue outside the tool's own callback */
}

/* Replaces *dst with a copy of v (NULL keeps the old value). */
static void set_str(char **dst, const char *v)
{
	if (!v)
		return;
	free(*dst);
	*dst = strdup(v);
}

/* The running call as the tool sees it, or NULL once it has ended. */
static struct toolrun *live_run(struct tool_call *c)
{
	struct toolrun *r = container_of(c, struct toolrun, pub);
	return r->finished ? NULL : r;
}

void tool_call_done(struct tool_call *c, const char *output, const char *title,
		    const char *metadata_json)
{
	struct toolrun *r = live_run(c);
	if (!r)
		return;
	r->p->ts = TS_COMPLETED;
	set_str(&r->p->output, output ? output : "");
	set_str(&r->p->title, title);
	set_str(&r->p->meta, metadata_json);
	toolrun_finish(r);
}

void tool_call_fail(struct tool_call *c, const char *error, const char *metadata_json)
{
	struct toolrun *r = live_run(c);
	if (!r)
		return;
	r->p->ts = TS_ERROR;
	set_str(&r->p->error, error ? error : "tool failed");
	set_str(&r->p->meta, metadata_json);
	toolrun_finish(r);
}

void tool_call_set_metadata(struct tool_call *c, const char *title, const char *metadata_json)
{
	struct toolrun *r = live_run(c);
	if (!r)
		return;
	set_str(&r->p->title, title);
	set_str(&r->p->meta, metadata_json);
	part_save(c->E, r->p);
}

struct loop *tool_call_loop(struct tool_call *c)
{
	return c->E->L;
}
