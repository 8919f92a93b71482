#include "userparts.h"
#include "jsonin.h"
#include "localfile.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What OpenCode tells the model about an @agent mention (its text, as it sends it). */
#define AGENT_HINT                                                                      \
	" Use the above message and context to generate a prompt and call the task tool " \
	"with subagent: "

/* ---- errors naming the part ---- */

static int part_err(struct err *e, int i, const char *field, const char *fmt, ...)
{
	char msg[sizeof(e->msg)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	err_set(e, ERR_INVALID, "parts[%d]%s%.40s: %.440s", i, field ? "." : "",
		field ? field : "", msg);
	return -1;
}

/* Each key of the part is one its type has (sessionID and messageID, which a client
 * re-sending a stored part carries, are ignored as OpenCode does). */
static int fields_known(const cJSON *it, int i, const char *type, const char *const *known,
			struct err *e)
{
	const cJSON *k;
	cJSON_ArrayForEach(k, it) {
		int ok = !strcmp(k->string, "type") || !strcmp(k->string, "id") ||
			 !strcmp(k->string, "sessionID") || !strcmp(k->string, "messageID");
		for (const char *const *f = known; !ok && *f; f++)
			ok = !strcmp(k->string, *f);
		if (!ok)
			return part_err(e, i, k->string, "a %s part has no such field", type);
	}
	return 0;
}

static int oom(struct err *e)
{
	err_set(e, ERR_INTERNAL, "out of memory");
	return -1;
}

/* ---- the list ---- */

static struct upart *push(struct uparts *u, enum part_type type)
{
	if (u->n == u->cap) {
		int cap = u->cap ? u->cap * 2 : 8;
		struct upart *v = realloc(u->v, (size_t)cap * sizeof(*v));
		if (!v)
			return NULL;
		u->v = v;
		u->cap = cap;
	}
	struct upart *p = &u->v[u->n++];
	memset(p, 0, sizeof(*p));
	p->type = type;
	p->extra = cJSON_CreateObject();
	return p->extra ? p : (u->n--, NULL);
}

void uparts_free(struct uparts *u)
{
	for (int i = 0; i < u->n; i++) {
		free(u->v[i].text);
		cJSON_Delete(u->v[i].extra);
	}
	free(u->v);
	free(u->text);
	memset(u, 0, sizeof(*u));
}

/* Copies member k of it (when there) into extra. */
static void keep(cJSON *extra, const cJSON *it, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(it, k);
	if (v)
		cJSON_AddItemToObject(extra, k, cJSON_Duplicate(v, 1));
}

static int found(void *arg, const struct store_part *r)
{
	return 1;
}

static int check_id(struct engine *E, const struct uparts *u, const cJSON *it, int i,
		    struct upart *p, struct err *e)
{
	const char *id = NULL;
	if (jsonin_str(it, "id", 0, &id, e))
		return part_err(e, i, "id", "must be a string");
	if (!id)
		return 0;
	if (!id_valid(id, "prt"))
		return part_err(e, i, "id", "\"%.100s\" is not a prt_ id", id);
	for (int k = 0; k < u->n; k++)
		if (!strcmp(u->v[k].id, id))
			return part_err(e, i, "id", "%s is given to two parts", id);
	if (store_part_get(E->S, id, found, NULL) != 0)
		return part_err(e, i, "id", "%s is already used", id);
	snprintf(p->id, sizeof(p->id), "%s", id);
	return 0;
}

/* An optional member that must be an object (or null). */
static int opt_object(const cJSON *it, int i, const char *k, struct err *e)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(it, k);
	if (v && !cJSON_IsObject(v) && !cJSON_IsNull(v))
		return part_err(e, i, k, "must be an object");
	return 0;
}

static int opt_bool(const cJSON *it, int i, const char *k, struct err *e)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(it, k);
	if (v && !cJSON_IsBool(v))
		return part_err(e, i, k, "must be true or false");
	return 0;
}

static int req_str(const cJSON *it, int i, const char *k, const char **out, struct err *e)
{
	if (jsonin_str(it, k, 1, out, e))
		return part_err(e, i, k, "a string is required");
	return 0;
}

/* ---- text ---- */

static int add_text(struct uparts *u, const char *text, int client, int synthetic)
{
	struct upart *p = push(u, P_TEXT);
	if (!p || !(p->text = strdup(text)))
		return -1;
	p->client_text = client;
	if (synthetic)
		cJSON_AddBoolToObject(p->extra, "synthetic", 1);
	return 0;
}

static int parse_text(struct engine *E, struct uparts *u, const cJSON *it, int i,
		      struct err *e)
{
	static const char *const known[] = {"text", "synthetic", "ignored", "time", "metadata",
					    NULL};
	const char *text;
	if (fields_known(it, i, "text", known, e) || req_str(it, i, "text", &text, e) ||
	    opt_bool(it, i, "synthetic", e) || opt_bool(it, i, "ignored", e) ||
	    opt_object(it, i, "time", e) || opt_object(it, i, "metadata", e))
		return -1;
	struct upart *p = push(u, P_TEXT);
	if (!p)
		return oom(e);
	if (check_id(E, u, it, i, p, e))
		return -1;
	if (!(p->text = strdup(text)))
		return oom(e);
	p->client_text = 1;
	keep(p->extra, it, "synthetic");
	keep(p->extra, it, "ignored");
	keep(p->extra, it, "time");
	keep(p->extra, it, "metadata");
	return 0;
}

/* ---- files ---- */

struct fbytes {
	unsigned char *bytes;
	size_t len;
	int is_dir;
	char name[256];
};

/* A URL scheme other than data: and file: (http:, ftp:, ...): its length, else 0. */
static size_t other_scheme(const char *url)
{
	size_t n = 0;
	if (!isalpha((unsigned char)url[0]))
		return 0;
	while (isalnum((unsigned char)url[n]) || url[n] == '+' || url[n] == '-' || url[n] == '.')
		n++;
	if (url[n] != ':' || n < 2 || !strncasecmp(url, "data:", 5) || !strncasecmp(url, "file:", 5))
		return 0;
	return n;
}

/* The file's bytes: a data: URL decoded, or a path read inside the session's directory;
 * at most max of them. */
static int file_bytes(const struct session *s, const char *url, size_t max, int i,
		      struct fbytes *f, struct err *e)
{
	char why[600];
	memset(f, 0, sizeof(*f));
	if (!strncasecmp(url, "data:", 5)) {
		struct media_data d;
		if (media_data_parse(url, max, &d, why, sizeof(why)))
			return part_err(e, i, "url", "%s%s", why,
					strstr(why, ", over ") ? " bytes left under limits.max_file_bytes "
								 "for this prompt's files" : "");
		f->bytes = d.bytes;
		f->len = d.len;
		return 0;
	}
	size_t scheme = other_scheme(url);
	if (scheme)
		return part_err(e, i, "url", "%.*s: URLs are not fetched; send the file as a "
				"data: URL, or a path inside the session's directory",
				(int)(scheme > 20 ? 20 : scheme), url);
	struct localfile lf;
	if (localfile_read(s->directory, url, max, &lf, why, sizeof(why)))
		return part_err(e, i, "url", "%s", why);
	if (lf.first_line || lf.last_line)
		lf.len = localfile_lines(lf.bytes, lf.len, lf.first_line, lf.last_line);
	f->bytes = lf.bytes;
	f->len = lf.len;
	f->is_dir = lf.is_dir;
	snprintf(f->name, sizeof(f->name), "%s", lf.name);
	return 0;
}

/* The MIME type the file is kept as: the client's, checked against the bytes (an image
 * or PDF must start like one; text must be UTF-8), or found from them when the client
 * said application/octet-stream. NULL with e when no model here takes it. */
static const char *file_mime(const char *mime, const struct fbytes *f, int i, struct err *e)
{
	const char *sniffed = media_sniff(f->bytes, f->len);
	if (f->is_dir)
		return "application/x-directory";
	if (!*mime || !strcasecmp(mime, "application/octet-stream"))
		mime = sniffed ? sniffed : media_utf8_text(f->bytes, f->len) ? "text/plain" : mime;
	switch (media_kind_of(mime)) {
	case MEDIA_IMAGE:
	case MEDIA_PDF: {
		int same = sniffed && media_kind_of(sniffed) == media_kind_of(mime);
		if (!same || (strcasecmp(mime, sniffed) && strcasecmp(mime, "image/jpg"))) {
			part_err(e, i, "mime", "%s, but the file's bytes are %s", mime,
				 sniffed ? sniffed : "not of that type");
			return NULL;
		}
		return sniffed;
	}
	case MEDIA_TEXT:
	case MEDIA_DIR:
		if (!media_utf8_text(f->bytes, f->len)) {
			part_err(e, i, "mime", "%s, but the file is not UTF-8 text", mime);
			return NULL;
		}
		return mime;
	case MEDIA_OTHER:
		break;
	}
	part_err(e, i, "mime", "%.100s: only images (png, jpeg, gif, webp), PDFs and text files "
		 "can be attached", *mime ? mime : "(none)");
	return NULL;
}

int uparts_model_takes(struct engine *E, const char *model, enum media_kind k)
{
	const struct model_info *mi = catalog_lookup(llm_catalog(E->M), model);
	if (k != MEDIA_IMAGE && k != MEDIA_PDF)
		return 1;
	if (!mi || !mi->configured)
		return 1; /* capabilities unknown: the provider decides */
	if (mi->attachment && !mi->input_image && !mi->input_pdf)
		return 1; /* "attachment": true with no input modalities named */
	return k == MEDIA_IMAGE ? mi->input_image : mi->input_pdf;
}

static int parse_file(struct engine *E, const struct session *s, const char *model,
		      struct uparts *u, const cJSON *it, int i, struct err *e)
{
	static const char *const known[] = {"mime", "filename", "url", "source", NULL};
	const char *mime, *url, *filename = NULL;
	int64_t max = E->C.max_file_bytes;
	if (fields_known(it, i, "file", known, e) || req_str(it, i, "mime", &mime, e) ||
	    req_str(it, i, "url", &url, e) || opt_object(it, i, "source", e))
		return -1;
	if (jsonin_str(it, "filename", 0, &filename, e))
		return part_err(e, i, "filename", "must be a string");
	struct upart *p = push(u, P_FILE);
	if (!p)
		return oom(e);
	if (check_id(E, u, it, i, p, e))
		return -1;
	struct fbytes f;
	if ((int64_t)u->file_bytes >= max)
		return part_err(e, i, NULL, "the prompt's files are over limits.max_file_bytes "
				"(%lld bytes together)", (long long)max);
	if (file_bytes(s, url, (size_t)max - u->file_bytes, i, &f, e))
		return -1;
	int rc = -1;
	const char *kept = file_mime(mime, &f, i, e);
	enum media_kind k = kept ? media_kind_of(kept) : MEDIA_OTHER;
	if (kept && !uparts_model_takes(E, model, k)) {
		const char *slash = strchr(model, '/');
		part_err(e, i, NULL, "model %s does not take %s (its catalog entry, providers.%.*s"
			 ".models.%s, lists no \"%s\" in modalities.input)", model,
			 k == MEDIA_IMAGE ? "images" : "PDFs", (int)(slash - model), model, slash + 1,
			 k == MEDIA_IMAGE ? "image" : "pdf");
		kept = NULL;
	}
	char *data = kept ? media_data_url(kept, f.bytes, f.len) : NULL;
	if (data) {
		cJSON_AddStringToObject(p->extra, "mime", kept);
		if (filename || *f.name)
			cJSON_AddStringToObject(p->extra, "filename", filename ? filename : f.name);
		cJSON_AddStringToObject(p->extra, "url", data);
		keep(p->extra, it, "source");
		u->file_bytes += f.len;
		rc = 0;
	} else if (kept) {
		err_set(e, ERR_INTERNAL, "out of memory");
	}
	free(data);
	free(f.bytes);
	return rc;
}

/* ---- agents and subtasks ---- */

static int parse_agent(struct engine *E, struct uparts *u, const cJSON *it, int i,
		       struct err *e)
{
	static const char *const known[] = {"name", "source", NULL};
	const char *name;
	if (fields_known(it, i, "agent", known, e) || req_str(it, i, "name", &name, e) ||
	    opt_object(it, i, "source", e))
		return -1;
	if (!agents_find(&E->A, name))
		return part_err(e, i, "name", "unknown agent \"%.100s\" (GET /agent lists them)",
				name);
	struct upart *p = push(u, P_AGENT);
	if (!p || check_id(E, u, it, i, p, e))
		return p ? -1 : oom(e);
	cJSON_AddStringToObject(p->extra, "name", name);
	keep(p->extra, it, "source");
	char hint[256];
	snprintf(hint, sizeof(hint), AGENT_HINT "%s", name);
	return add_text(u, hint, 0, 1) ? oom(e) : 0;
}

static int parse_subtask(struct engine *E, struct uparts *u, const cJSON *it, int i,
			 struct err *e)
{
	static const char *const known[] = {"prompt", "description", "agent", "model", "command",
					    NULL};
	const char *prompt, *desc, *agent;
	if (fields_known(it, i, "subtask", known, e) || req_str(it, i, "prompt", &prompt, e) ||
	    req_str(it, i, "description", &desc, e) || req_str(it, i, "agent", &agent, e))
		return -1;
	if (!agents_find(&E->A, agent))
		return part_err(e, i, "agent", "unknown agent \"%.100s\" (GET /agent lists them)",
				agent);
	/* the task tool runs a subagent with its agent's model, and has no commands */
	if (cJSON_GetObjectItemCaseSensitive(it, "model"))
		return part_err(e, i, "model", "a subtask runs with its agent's model; choosing "
				"another is not supported");
	if (cJSON_GetObjectItemCaseSensitive(it, "command"))
		return part_err(e, i, "command", "commands are not supported");
	struct upart *p = push(u, P_SUBTASK);
	if (!p || check_id(E, u, it, i, p, e))
		return p ? -1 : oom(e);
	cJSON_AddStringToObject(p->extra, "prompt", prompt);
	cJSON_AddStringToObject(p->extra, "description", desc);
	cJSON_AddStringToObject(p->extra, "agent", agent);
	u->subtasks++;
	return 0;
}

/* ---- the prompt ---- */

/* The client's text parts joined by a blank line. */
static int join_text(struct uparts *u)
{
	struct jw w;
	jw_init(&w);
	jw_append(&w, "", 0);
	for (int i = 0; i < u->n; i++) {
		if (!u->v[i].client_text)
			continue;
		if (w.len)
			jw_append(&w, "\n\n", 2);
		jw_append(&w, u->v[i].text, strlen(u->v[i].text));
	}
	free(u->text);
	u->text = jw_take(&w, NULL);
	return u->text ? 0 : -1;
}

static int parse_part(struct engine *E, const struct session *s, const char *model,
		      struct uparts *u, const cJSON *it, int i, struct err *e)
{
	const char *type = NULL;
	if (!cJSON_IsObject(it) || jsonin_str(it, "type", 1, &type, e))
		return part_err(e, i, NULL, "must be an object with a \"type\" (text, file, agent "
				"or subtask)");
	if (!strcmp(type, "text"))
		return parse_text(E, u, it, i, e);
	if (!strcmp(type, "file"))
		return parse_file(E, s, model, u, it, i, e);
	if (!strcmp(type, "agent"))
		return parse_agent(E, u, it, i, e);
	if (!strcmp(type, "subtask"))
		return parse_subtask(E, u, it, i, e);
	return part_err(e, i, "type", "unknown part type \"%.60s\" (text, file, agent or subtask)",
			type);
}

/* Something the model can answer: text, a file, an agent or a subtask. */
static int has_content(const struct uparts *u)
{
	for (int i = 0; i < u->n; i++)
		if (u->v[i].type != P_TEXT || *u->v[i].text)
			return 1;
	return 0;
}

int uparts_parse(struct engine *E, const struct session *s, const struct prompt *p,
		 const char *agent, const char *model, struct uparts *u, struct err *e)
{
	memset(u, 0, sizeof(*u));
	(void)agent;
	if (!p->parts) {
		if (!p->text || !*p->text) {
			err_set(e, ERR_INVALID, "the prompt has no text");
			return -1;
		}
		if (add_text(u, p->text, 1, 0) || join_text(u))
			goto oom;
		return 0;
	}
	if (!cJSON_IsArray(p->parts)) {
		err_set(e, ERR_INVALID, "\"parts\" must be an array of parts (text, file, agent, "
			"subtask)");
		return -1;
	}
	int i = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, p->parts) {
		if (parse_part(E, s, model, u, it, i++, e)) {
			uparts_free(u);
			return -1;
		}
	}
	if (!has_content(u)) {
		uparts_free(u);
		err_set(e, ERR_INVALID, "the prompt has no text, file, agent or subtask part");
		return -1;
	}
	if (join_text(u))
		goto oom;
	return 0;
oom:
	uparts_free(u);
	return oom(e);
}

int uparts_set_text(struct uparts *u, const char *text)
{
	int at = -1;
	for (int i = 0; i < u->n; i++) {
		if (!u->v[i].client_text)
			continue;
		if (at < 0) {
			at = i;
			continue;
		}
		free(u->v[i].text);
		cJSON_Delete(u->v[i].extra);
		memmove(&u->v[i], &u->v[i + 1], (size_t)(u->n - i - 1) * sizeof(*u->v));
		u->n--;
		i--;
	}
	if (at < 0) { /* no text part: the hook's text comes first */
		if (add_text(u, text, 1, 0))
			return -1;
		struct upart t = u->v[u->n - 1];
		memmove(&u->v[1], &u->v[0], (size_t)(u->n - 1) * sizeof(*u->v));
		u->v[0] = t;
	} else {
		char *dup = strdup(text);
		if (!dup)
			return -1;
		free(u->v[at].text);
		u->v[at].text = dup;
	}
	return join_text(u);
}

int uparts_write(struct engine *E, struct msg *m, struct uparts *u)
{
	for (int i = 0; i < u->n; i++) {
		struct upart *up = &u->v[i];
		struct part *p = part_add(E, m, up->type);
		if (!p)
			return -1;
		if (up->id[0])
			memcpy(p->id, up->id, sizeof(p->id));
		if (up->text) {
			p->text = up->text;
			p->len = p->cap = strlen(up->text);
			up->text = NULL;
		}
		if (up->extra && up->extra->child) {
			p->extra = up->extra;
			up->extra = NULL;
		}
	}
	int rc = msg_save(E, m);
	for (struct part *p = m->parts; p; p = p->next)
		rc |= part_save(E, p);
	return rc ? -1 : 0;
}

void uparts_history_file(cJSON *files, const cJSON *part)
{
	const char *mime = jsonin_get(part, "mime"), *url = jsonin_get(part, "url");
	const char *name = jsonin_get(part, "filename");
	if (!mime || !url)
		return;
	cJSON *f = cJSON_CreateObject();
	cJSON_AddStringToObject(f, "mime", mime);
	if (name)
		cJSON_AddStringToObject(f, "filename", name);
	cJSON_AddStringToObject(f, "url", url);
	cJSON_AddItemToArray(files, f);
}
