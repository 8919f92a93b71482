#include "tool.h"

#include <stdlib.h>
#include <string.h>

int tools_register(struct tools *T, const struct tool_def *def)
{
	if (tools_find(T, def->name))
		return -1;
	struct tool_def *v = realloc(T->v, (size_t)(T->n + 1) * sizeof(*v));
	if (!v)
		return -1;
	T->v = v;
	T->v[T->n++] = *def;
	return 0;
}

const struct tool_def *tools_find(const struct tools *T, const char *name)
{
	for (int i = 0; name && i < T->n; i++)
		if (!strcmp(T->v[i].name, name))
			return &T->v[i];
	return NULL;
}

void tools_free(struct tools *T)
{
	free(T->v);
	T->v = NULL;
	T->n = 0;
}
