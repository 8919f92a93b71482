/* api_app: small reads and writes of the gateway's state in OpenCode's shapes — GET
 * /path, POST /log, GET /session/{id}/todo. Loop thread. */
#include "api_ops.h"
#include "jsonin.h"
#include "log.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* OpenCode's Path: home, state (the data directory), config (the config file's
 * directory), worktree and directory (the directory asked about — ?directory=, as the v2
 * SDK sends it — else the workspace). */
int api_path_get(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	const char *dir = NULL, *home = getenv("HOME");
	char cfg[PATH_MAX];
	const char *cdir = engine_config(E)->dir;
	if (jsonin_str(p, "directory", 0, &dir, e))
		return -1;
	if (dir && dir[0] != '/') {
		err_set(e, ERR_INVALID, "\"directory\" must be an absolute path (got \"%.200s\")", dir);
		return -1;
	}
	if (!dir || !*dir)
		dir = engine_workspace(E);
	jw_obj(w);
	jw_kstr(w, "home", home ? home : "");
	jw_kstr(w, "state", engine_data_dir(E));
	jw_kstr(w, "config", cdir && realpath(cdir, cfg) ? cfg : "");
	jw_kstr(w, "worktree", dir);
	jw_kstr(w, "directory", dir);
	jw_obj_end(w);
	return 0;
}

/* s with its control characters (line breaks...) as spaces: one entry, one log line. */
static char *one_line(char *s)
{
	for (char *c = s; *c; c++)
		if ((unsigned char)*c < ' ' || *c == 0x7f)
			*c = ' ';
	return s;
}

/* OpenCode's AppLog body {service, level: debug|info|warn|error, message, extra?}: one
 * line in the gateway's log. */
int api_app_log(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	static const struct {
		const char *name;
		enum log_level level;
	} levels[] = {{"debug", LOG_DEBUG}, {"info", LOG_INFO}, {"warn", LOG_WARN},
		      {"error", LOG_ERROR}};
	const char *service, *level, *message;
	const cJSON *extra = cJSON_GetObjectItemCaseSensitive(p, "extra");
	if (jsonin_str(p, "service", 1, &service, e) || jsonin_str(p, "level", 1, &level, e) ||
	    jsonin_str(p, "message", 1, &message, e))
		return -1;
	if (extra && !cJSON_IsObject(extra)) {
		err_set(e, ERR_INVALID, "\"extra\" must be an object");
		return -1;
	}
	size_t i = 0, n = sizeof(levels) / sizeof(levels[0]);
	while (i < n && strcmp(levels[i].name, level))
		i++;
	if (i == n) {
		err_set(e, ERR_INVALID, "\"level\" must be debug, info, warn or error (got \"%.40s\")",
			level);
		return -1;
	}
	char *x = extra ? cJSON_PrintUnformatted(extra) : NULL, *svc = strdup(service),
	     *msg = strdup(message);
	if (svc && msg)
		log_msg(levels[i].level, "client %.100s: %.2000s%s%.2000s", one_line(svc),
			one_line(msg), x ? " " : "", x ? x : "");
	free(x);
	free(svc);
	free(msg);
	jw_bool(w, 1);
	return 0;
}

int api_session_todo(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	const char *id;
	return jsonin_str(p, "sessionID", 1, &id, e) || engine_todo_json(E, id, w, e) ? -1 : 0;
}
