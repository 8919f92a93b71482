/* tool: the registry. Each tool is its own allocation, so a definition never moves;
 * a tool unregistered while calls hold it is freed when the last lets go. */
#include "tool.h"

#include <stdlib.h>
#include <string.h>

struct tool_entry {
	struct tool_def def; /* first: a definition's address is its entry's */
	char *owner;
	int holds;           /* running calls */
	int removed;
	struct tool_entry *next;
};

static void entry_free(struct tool_entry *t)
{
	if (t->def.release)
		t->def.release(t->def.arg);
	free((char *)t->def.name);
	free((char *)t->def.description);
	free((char *)t->def.parameters);
	free(t->owner);
	free(t);
}

int tools_register(struct tools *T, const struct tool_def *def, const char *owner)
{
	if (tools_find(T, def->name))
		return -1;
	struct tool_entry *t = calloc(1, sizeof(*t));
	if (!t)
		return -1;
	t->def = *def;
	t->def.name = strdup(def->name);
	t->def.description = strdup(def->description ? def->description : "");
	t->def.parameters = strdup(def->parameters ? def->parameters : "{\"type\":\"object\"}");
	t->owner = strdup(owner ? owner : "");
	if (!t->def.name || !t->def.description || !t->def.parameters || !t->owner) {
		t->def.release = NULL; /* the caller keeps its arg */
		entry_free(t);
		return -1;
	}
	struct tool_entry **pp = &T->head;
	while (*pp)
		pp = &(*pp)->next;
	*pp = t;
	return 0;
}

/* Unlinks and frees the removed entries nobody holds. */
static void sweep(struct tools *T)
{
	for (struct tool_entry **pp = &T->head; *pp;) {
		struct tool_entry *t = *pp;
		if (t->removed && !t->holds) {
			*pp = t->next;
			entry_free(t);
		} else {
			pp = &t->next;
		}
	}
}

void tools_unregister(struct tools *T, const char *owner)
{
	for (struct tool_entry *t = T->head; t; t = t->next)
		if (!strcmp(t->owner, owner ? owner : ""))
			t->removed = 1;
	sweep(T);
}

int tools_unregister_name(struct tools *T, const char *owner, const char *name)
{
	for (struct tool_entry *t = T->head; t; t = t->next)
		if (!t->removed && !strcmp(t->owner, owner) && !strcmp(t->def.name, name)) {
			t->removed = 1;
			sweep(T);
			return 0;
		}
	return -1;
}

const struct tool_def *tools_find(const struct tools *T, const char *name)
{
	for (struct tool_entry *t = T->head; name && t; t = t->next)
		if (!t->removed && !strcmp(t->def.name, name))
			return &t->def;
	return NULL;
}

void tools_hold(const struct tool_def *def)
{
	((struct tool_entry *)(void *)def)->holds++;
}

void tools_release(struct tools *T, const struct tool_def *def)
{
	struct tool_entry *t = (struct tool_entry *)(void *)def;
	if (--t->holds == 0 && t->removed)
		sweep(T);
}

void tools_each(const struct tools *T, void (*fn)(void *arg, const struct tool_def *def),
		void *arg)
{
	for (struct tool_entry *t = T->head; t; t = t->next)
		if (!t->removed)
			fn(arg, &t->def);
}

void tools_free(struct tools *T)
{
	while (T->head) {
		struct tool_entry *t = T->head;
		T->head = t->next;
		entry_free(t);
	}
}

cJSON *tools_schema(const struct tool_def *def)
{
	cJSON *t = cJSON_CreateObject();
	cJSON_AddStringToObject(t, "name", def->name);
	cJSON_AddStringToObject(t, "description", def->description);
	cJSON_AddItemToObject(t, "parameters", cJSON_Parse(def->parameters));
	return t;
}
