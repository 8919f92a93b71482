#include "compat.h"
#include "agent.h"
#include "jsonin.h"
#include "llm.h"
#include "provider_info.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* agentgate serves one project, its workspace; OpenCode names a project outside git
 * "global", as agentgate's sessions already do (their projectID). */
#define PROJECT_ID "global"

/* ---- the workspace's git repository, read from its files (no git process) ---- */

/* a/b into out: 0, or -1 when it does not fit. */
static int join(char *out, size_t n, const char *a, const char *b)
{
	int k = snprintf(out, n, "%s/%s", a, b);
	return k < 0 || (size_t)k >= n ? -1 : 0;
}

/* b when it is absolute, else a/b. */
static int resolve(char *out, size_t n, const char *a, const char *b)
{
	if (*b != '/')
		return join(out, n, a, b);
	int k = snprintf(out, n, "%s", b);
	return k < 0 || (size_t)k >= n ? -1 : 0;
}

/* The first line of DIR/NAME into buf (without its newline): 0, or -1. */
static int read_line(const char *dir, const char *name, char *buf, size_t n)
{
	char path[PATH_MAX];
	if (join(path, sizeof(path), dir, name))
		return -1;
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	int ok = fgets(buf, (int)n, f) != NULL;
	fclose(f);
	if (!ok)
		return -1;
	buf[strcspn(buf, "\r\n")] = 0;
	return 0;
}

/* The git directory of dir or its nearest ancestor that has one (a ".git" directory, or
 * a ".git" file "gitdir: PATH" as a linked worktree has): 0, or -1 outside git. */
static int git_dir(const char *dir, char *out, size_t n)
{
	char probe[PATH_MAX], line[PATH_MAX];
	snprintf(probe, sizeof(probe), "%s", dir);
	for (;;) {
		struct stat st;
		if (!join(out, n, probe, ".git") && !stat(out, &st)) {
			if (S_ISDIR(st.st_mode))
				return 0;
			if (S_ISREG(st.st_mode) && !read_line(probe, ".git", line, sizeof(line)) &&
			    !strncmp(line, "gitdir: ", 8) && !resolve(out, n, probe, line + 8))
				return 0;
		}
		char *slash = strrchr(probe, '/');
		if (!slash || slash == probe)
			return -1;
		*slash = 0;
	}
}

/* The branch a "ref: refs/…/NAME" line names after prefix, into out; -1 otherwise. */
static int ref_branch(const char *line, const char *prefix, char *out, size_t n)
{
	size_t l = strlen(prefix);
	if (strncmp(line, "ref: ", 5) || strncmp(line + 5, prefix, l) || !line[5 + l])
		return -1;
	snprintf(out, n, "%s", line + 5 + l);
	return 0;
}

/* {branch?, default_branch?}: HEAD's branch (none when detached), and the branch
 * refs/remotes/origin/HEAD points at (in the common directory of a linked worktree). */
static void vcs_json(const char *workspace, struct jw *w)
{
	char gd[PATH_MAX], common[PATH_MAX], line[PATH_MAX], name[1024];
	jw_obj(w);
	if (git_dir(workspace, gd, sizeof(gd))) {
		jw_obj_end(w);
		return;
	}
	if (!read_line(gd, "HEAD", line, sizeof(line)) &&
	    !ref_branch(line, "refs/heads/", name, sizeof(name)))
		jw_kstr(w, "branch", name);
	if (read_line(gd, "commondir", line, sizeof(line)) ||
	    resolve(common, sizeof(common), gd, line))
		snprintf(common, sizeof(common), "%s", gd);
	if (!read_line(common, "refs/remotes/origin/HEAD", line, sizeof(line)) &&
	    !ref_branch(line, "refs/remotes/origin/", name, sizeof(name)))
		jw_kstr(w, "default_branch", name);
	jw_obj_end(w);
}

/* ---- the project ---- */

static int project_json(struct engine *E, struct jw *w, struct err *e)
{
	const char *ws = engine_workspace(E);
	int64_t created, updated;
	char gd[PATH_MAX];
	if (engine_session_times(E, &created, &updated)) {
		err_set(e, ERR_INTERNAL, "the store cannot be read");
		return -1;
	}
	const char *base = strrchr(ws, '/');
	jw_obj(w);
	jw_kstr(w, "id", PROJECT_ID);
	jw_kstr(w, "worktree", ws);
	if (!git_dir(ws, gd, sizeof(gd)))
		jw_kstr(w, "vcs", "git");
	jw_kstr(w, "name", base && base[1] ? base + 1 : ws);
	jw_key(w, "time");
	jw_obj(w);
	jw_kint(w, "created", created);
	jw_kint(w, "updated", updated);
	jw_obj_end(w);
	jw_kraw(w, "sandboxes", "[]");
	jw_obj_end(w);
	return 0;
}

int compat_project_current(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	return project_json(E, w, e);
}

int compat_project_list(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	jw_arr(w);
	if (project_json(E, w, e))
		return -1;
	jw_arr_end(w);
	return 0;
}

int compat_project_directories(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	const char *id;
	if (jsonin_str(p, "projectID", 1, &id, e))
		return -1;
	if (strcmp(id, PROJECT_ID)) {
		err_set(e, ERR_NOTFOUND, "project %.100s not found (agentgate has one project, "
			"\"" PROJECT_ID "\": its workspace)", id);
		return -1;
	}
	jw_arr(w);
	jw_obj(w);
	jw_kstr(w, "directory", engine_workspace(E));
	jw_obj_end(w);
	jw_arr_end(w);
	return 0;
}

int compat_vcs(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	vcs_json(engine_workspace(E), w);
	return 0;
}

/* ---- what agentgate does not have ---- */

int compat_none(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	jw_raw(w, "[]");
	return 0;
}

int compat_capabilities(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	jw_raw(w, "{\"backgroundSubagents\":false}");
	return 0;
}

int compat_console(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	jw_raw(w, "{\"consoleManagedProviders\":[],\"switchableOrgCount\":0}");
	return 0;
}

int compat_resources(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	jw_raw(w, "{}");
	return 0;
}

/* ---- the v2 API ---- */

static void location_json(struct engine *E, struct jw *w)
{
	jw_obj(w);
	jw_kstr(w, "directory", engine_workspace(E));
	jw_key(w, "project");
	jw_obj(w);
	jw_kstr(w, "id", PROJECT_ID);
	jw_kstr(w, "directory", engine_workspace(E));
	jw_obj_end(w);
	jw_obj_end(w);
}

/* {location, data: [ ... — the caller writes the items, then v2_end. */
static void v2_begin(struct engine *E, struct jw *w)
{
	jw_obj(w);
	jw_key(w, "location");
	location_json(E, w);
	jw_key(w, "data");
	jw_arr(w);
}

static void v2_end(struct jw *w)
{
	jw_arr_end(w);
	jw_obj_end(w);
}

int compat_location(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	location_json(E, w);
	return 0;
}

int compat_empty_v2(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	v2_begin(E, w);
	v2_end(w);
	return 0;
}

static void agent_v2_json(struct engine *E, const struct agent *a, struct jw *w)
{
	jw_obj(w);
	jw_kstr(w, "id", a->name);
	if (a->model)
		model_write_json(w, "model", a->model, "id");
	jw_kraw(w, "request", "{\"headers\":{},\"body\":{}}");
	if (a->prompt && *a->prompt)
		jw_kstr(w, "system", a->prompt);
	if (a->description && *a->description)
		jw_kstr(w, "description", a->description);
	jw_kstr(w, "mode", a->mode);
	jw_kbool(w, "hidden", 0);
	if (a->max_steps > 0)
		jw_kint(w, "steps", a->max_steps);
	jw_key(w, "permissions");
	engine_permission_rules_json(E, a->name, w);
	jw_obj_end(w);
}

int compat_agents_v2(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	const struct agents *A = engine_agents(E);
	v2_begin(E, w);
	for (int i = 0; i < A->n; i++)
		agent_v2_json(E, &A->v[i], w);
	v2_end(w);
	return 0;
}

/* "YYYY-MM-DD" as ms since 1970 (UTC midnight); 0 when it is not such a date. */
static int64_t release_ms(const char *date)
{
	struct tm tm = {0};
	char rest;
	if (!date || sscanf(date, "%4d-%2d-%2d%c", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &rest) != 3)
		return 0;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	time_t t = timegm(&tm);
	return t < 0 ? 0 : (int64_t)t * 1000;
}

static void model_capabilities_json(const struct model_info *mi, struct jw *w)
{
	jw_obj(w);
	jw_kbool(w, "tools", mi->tool_call);
	jw_key(w, "input");
	jw_arr(w);
	jw_str(w, "text");
	if (mi->input_audio)
		jw_str(w, "audio");
	if (mi->input_image)
		jw_str(w, "image");
	if (mi->input_video)
		jw_str(w, "video");
	if (mi->input_pdf)
		jw_str(w, "pdf");
	jw_arr_end(w);
	jw_kraw(w, "output", "[\"text\"]");
	jw_obj_end(w);
}

/* {type: "native", url?, settings: {}, ...}: agentgate speaks each wire format itself,
 * through no AI SDK package; the caller may have opened it with members of its own. */
static void api_native_json(const struct provider_info *pi, struct jw *w)
{
	jw_kstr(w, "type", "native");
	if (pi && *pi->base_url)
		jw_kstr(w, "url", pi->base_url);
	jw_kraw(w, "settings", "{}");
	jw_obj_end(w);
}

static void model_v2_json(const struct config *C, const struct model_info *mi, struct jw *w)
{
	struct provider_info pi;
	int known = !provider_info_of(C, mi->provider, &pi);
	jw_obj(w);
	jw_kstr(w, "id", mi->id);
	jw_kstr(w, "providerID", mi->provider);
	jw_kstr(w, "name", mi->name);
	jw_key(w, "api");
	jw_obj(w);
	jw_kstr(w, "id", mi->id);
	api_native_json(known ? &pi : NULL, w);
	jw_key(w, "capabilities");
	model_capabilities_json(mi, w);
	jw_kraw(w, "request", "{\"headers\":{},\"body\":{}}");
	jw_kraw(w, "variants", "[]");
	jw_key(w, "time");
	jw_obj(w);
	jw_kint(w, "released", release_ms(mi->release_date));
	jw_obj_end(w);
	jw_key(w, "cost");
	jw_arr(w);
	jw_obj(w);
	jw_key(w, "input");
	jw_double(w, mi->cost_input);
	jw_key(w, "output");
	jw_double(w, mi->cost_output);
	jw_key(w, "cache");
	jw_obj(w);
	jw_key(w, "read");
	jw_double(w, mi->cost_cache_read);
	jw_key(w, "write");
	jw_double(w, mi->cost_cache_write);
	jw_obj_end(w);
	jw_obj_end(w);
	jw_arr_end(w);
	jw_kstr(w, "status", "active");
	jw_kbool(w, "enabled", known && pi.connected);
	jw_key(w, "limit");
	jw_obj(w);
	jw_kint(w, "context", mi->context);
	jw_kint(w, "output", mi->output);
	jw_obj_end(w);
	jw_obj_end(w);
}

int compat_models_v2(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	const struct catalog *K = llm_catalog(engine_llm(E));
	v2_begin(E, w);
	for (int i = 0; i < catalog_count(K); i++)
		model_v2_json(engine_config(E), catalog_at(K, i), w);
	v2_end(w);
	return 0;
}

int compat_providers_v2(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	struct provider_info pi;
	v2_begin(E, w);
	for (int i = 0; !provider_info_at(engine_config(E), i, &pi); i++) {
		jw_obj(w);
		jw_kstr(w, "id", pi.id);
		jw_kstr(w, "name", pi.name);
		jw_key(w, "api");
		jw_obj(w);
		api_native_json(&pi, w);
		jw_kraw(w, "request", "{\"headers\":{},\"body\":{}}");
		jw_obj_end(w);
	}
	v2_end(w);
	return 0;
}

int compat_commands_v2(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	v2_begin(E, w);
	commands_write_v2_json(engine_commands(E), w);
	v2_end(w);
	return 0;
}
