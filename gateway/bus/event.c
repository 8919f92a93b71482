/* event: an encoded event's references and its session filter. Any thread may take or
 * drop a reference; the rest of an event is immutable once published. */
#include "bus.h"

#include <stdlib.h>
#include <string.h>

void event_ref(struct event *ev)
{
	atomic_fetch_add_explicit(&ev->refs, 1, memory_order_relaxed);
}

void event_unref(struct event *ev)
{
	if (ev && atomic_fetch_sub_explicit(&ev->refs, 1, memory_order_acq_rel) == 1) {
		free(ev->path);
		free(ev);
	}
}

/* An id occurs in a '/'-separated path as a whole component. */
static int path_has(const char *path, const char *id)
{
	size_t n = strlen(id);
	for (const char *p = path; p && (p = strstr(p, id)); p += n) {
		int starts = p == path || p[-1] == '/';
		int ends = p[n] == 0 || p[n] == '/';
		if (starts && ends)
			return 1;
	}
	return 0;
}

int event_matches(const struct event *ev, const char *session_id, int descendants)
{
	if (!session_id || !*session_id)
		return 1;
	if (!strcmp(ev->session_id, session_id))
		return 1;
	return descendants && path_has(ev->path, session_id);
}

int event_type_reserved(const char *type)
{
	static const char *const own[] = {"session.", "message.", "server.", "permission.",
					  "todo.", "command.", "resync"};
	for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
		if (!strncmp(type, own[i], strlen(own[i])))
			return 1;
	return 0;
}
