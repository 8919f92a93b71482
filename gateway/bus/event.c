/* event: an encoded event's references and its session filter. Any thread may take or
 * drop a reference; the rest of an event is immutable once published. */
#include "bus_int.h"
#include "jw.h"

#include <stdio.h>
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

/* An event read back names its type as it was published: the JSON begins {"type":"...". */
void event_type_from_json(struct event *ev)
{
	static const char head[] = "{\"type\":\"";
	size_t hl = sizeof(head) - 1, n = 0;
	if (ev->len > hl && !memcmp(ev->json, head, hl))
		while (hl + n < ev->len && ev->json[hl + n] != '"' && n < sizeof(ev->type_buf) - 1)
			n++;
	memcpy(ev->type_buf, ev->json + hl, n);
	ev->type_buf[n] = 0;
	ev->type = ev->type_buf;
}

struct event *event_resync(int64_t since, int64_t oldest, int64_t last)
{
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_kstr(&w, "type", "resync");
	jw_key(&w, "properties");
	jw_obj(&w);
	jw_kint(&w, "since", since);
	jw_kint(&w, "oldest", oldest);
	jw_kint(&w, "last", last);
	jw_obj_end(&w);
	jw_kint(&w, "seq", last);
	jw_obj_end(&w);
	struct event *ev = w.oom ? NULL : calloc(1, sizeof(*ev) + w.len + 1);
	if (ev) {
		atomic_init(&ev->refs, 1);
		ev->seq = last;
		ev->type = "resync";
		ev->path = strdup("");
		memcpy(ev->json, w.buf, w.len + 1);
		ev->len = w.len;
	}
	jw_free(&w);
	return ev;
}
