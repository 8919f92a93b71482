/* stats: the engine's counters for GET /metrics (engine.h): turns by source and how
 * they ended, counted where they are accepted and where they end (turn_end), and the
 * sessions' and queues' state, read from the cache when asked. Plain integers on the
 * loop thread. */
#include "engine_int.h"

#include <string.h>

/* Sources are few (http, ws, cli, task, plugin:<id>); past this many the rest count as
 * "other", so no client can grow the table. */
#define STAT_SOURCES 64

static const char *const outcome_names[STAT_OUTCOMES] = {
	[STAT_ACCEPTED] = "accepted", [STAT_COALESCED] = "coalesced",
	[STAT_COMPLETED] = "completed", [STAT_FAILED] = "failed", [STAT_CANCELLED] = "cancelled",
	[STAT_KEPT] = "kept",
};

void stats_turn(struct engine *E, const char *source, enum stat_outcome o)
{
	struct turn_stat *ts = NULL;
	if (!source)
		source = "other";
	for (int i = 0; i < E->nstats && !ts; i++)
		if (!strcmp(E->stats[i].source, source))
			ts = &E->stats[i];
	if (!ts && E->nstats == STAT_SOURCES)
		source = "other";
	for (int i = 0; i < E->nstats && !ts; i++)
		if (!strcmp(E->stats[i].source, source))
			ts = &E->stats[i];
	if (!ts) {
		struct turn_stat *grown = vec_reserve(E->stats, &E->capstats, E->nstats, sizeof(*grown));
		if (!grown)
			return;
		E->stats = grown;
		ts = &E->stats[E->nstats++];
		memset(ts, 0, sizeof(*ts));
		snprintf(ts->source, sizeof(ts->source), "%s", source);
	}
	ts->n[o]++;
}

void engine_turn_counts(struct engine *E, engine_count_fn fn, void *arg)
{
	for (int i = 0; i < E->nstats; i++)
		for (int o = 0; o < STAT_OUTCOMES; o++)
			fn(arg, E->stats[i].source, outcome_names[o], E->stats[i].n[o]);
}

void engine_metrics(struct engine *E, struct engine_metrics *m)
{
	memset(m, 0, sizeof(*m));
	for (int b = 0; b < SES_BUCKETS; b++)
		for (const struct session *s = E->buckets[b]; s; s = s->hnext) {
			m->sessions[s->status]++;
			m->turns_running += s->cur != NULL;
			m->turns_queued += (int)s->q.waiting;
		}
	m->tool_completions_dropped = E->calls_dropped;
	m->store_failing = store_failure(E->S) != NULL;
}
