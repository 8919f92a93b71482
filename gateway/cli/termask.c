/* termask: permission questions on a terminal (termask.h). */
#include "termask.h"
#include "id.h"
#include "jsonin.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* An ask waiting for the user, oldest first; the head is the one on screen. */
struct question {
	struct question *next;
	char id[ID_MAX];
	char *title;
};

struct termask {
	FILE *out;
	termask_reply_fn reply;
	void *arg;
	struct question *q;
	int shown;  /* the head has been asked */
	int closed; /* the terminal went away: nobody answers any more */
	char line[256];
	size_t len;
};

struct termask *termask_create(FILE *out, termask_reply_fn reply, void *arg)
{
	struct termask *t = calloc(1, sizeof(*t));
	if (t)
		*t = (struct termask){.out = out, .reply = reply, .arg = arg};
	return t;
}

static void question_free(struct question *q)
{
	free(q->title);
	free(q);
}

static void show_next(struct termask *t)
{
	if (!t->q || t->shown || t->closed)
		return;
	fprintf(t->out, "\nAllow %s? [y]es / [n]o / [a]lways: ", t->q->title);
	fflush(t->out);
	t->shown = 1;
}

/* Takes the head off the queue and answers it. */
static void answer(struct termask *t, const char *reply, const char *message)
{
	struct question *q = t->q;
	t->q = q->next;
	t->shown = 0;
	t->reply(t->arg, q->id, reply, message);
	question_free(q);
}

static void on_line(struct termask *t, char *line)
{
	static const struct {
		const char *a, *b, *reply;
	} words[] = {{"y", "yes", "once"}, {"n", "no", "reject"}, {"a", "always", "always"}};
	line[strcspn(line, " \t\r")] = 0;
	for (size_t i = 0; t->q && i < sizeof(words) / sizeof(words[0]); i++)
		if (!strcasecmp(line, words[i].a) || !strcasecmp(line, words[i].b)) {
			answer(t, words[i].reply, NULL);
			show_next(t);
			return;
		}
	if (t->q) {
		fprintf(t->out, "Please answer y, n or a: ");
		fflush(t->out);
	}
}

void termask_input(struct termask *t, const char *buf, size_t n)
{
	while (n && !t->closed) {
		size_t take = sizeof(t->line) - 1 - t->len;
		if (take > n)
			take = n;
		memcpy(t->line + t->len, buf, take);
		t->len += take;
		t->line[t->len] = 0;
		buf += take;
		n -= take;
		char *nl;
		while ((nl = strchr(t->line, '\n'))) {
			*nl = 0;
			on_line(t, t->line);
			t->len -= (size_t)(nl + 1 - t->line);
			memmove(t->line, nl + 1, t->len + 1);
		}
		if (t->len == sizeof(t->line) - 1)
			t->len = 0; /* a line too long to be an answer */
	}
}

void termask_closed(struct termask *t)
{
	t->closed = 1;
	while (t->q)
		answer(t, "reject", "nobody can answer: the terminal closed");
}

int termask_wants_input(const struct termask *t)
{
	return t && t->shown && !t->closed;
}

void termask_event(struct termask *t, const char *type, const cJSON *p)
{
	int asked = !strcmp(type, "permission.asked");
	if (!t || (!asked && strcmp(type, "permission.replied")))
		return;
	const char *id = jsonin_get(p, asked ? "id" : "requestID");
	struct question **pp = &t->q;
	while (id && *pp && strcmp((*pp)->id, id))
		pp = &(*pp)->next;
	if (asked && id && !*pp && (*pp = calloc(1, sizeof(**pp)))) {
		snprintf((*pp)->id, sizeof((*pp)->id), "%s", id);
		(*pp)->title = strdup(jsonin_get(p, "title") ? jsonin_get(p, "title") : id);
		if (t->closed)
			answer(t, "reject", "nobody can answer: the terminal closed");
	} else if (!asked && id && *pp) { /* answered elsewhere (a client, an abort, a timeout) */
		struct question *q = *pp;
		if (q == t->q && t->shown) {
			fprintf(t->out, "(answered: %s)\n", jsonin_get(p, "reply"));
			t->shown = 0;
		}
		*pp = q->next;
		question_free(q);
	}
	show_next(t);
}

void termask_destroy(struct termask *t)
{
	if (!t)
		return;
	while (t->q) {
		struct question *q = t->q;
		t->q = q->next;
		question_free(q);
	}
	free(t);
}
