/* api_ops: operations of api.c's route table that live in files of their own, one per
 * topic (api_catalog.c: the model catalog; api_config.c: GET /config; api_command.c:
 * the config's commands; api_app.c: paths, client logs, todo lists). Each has
 * api_call's shape: params (an object or NULL) in, the result written to w, or -1 and
 * e. Loop thread. */
#ifndef AG_API_OPS_H
#define AG_API_OPS_H
#include "api.h"

/* GET /config/providers: {providers: Provider[] (the connected ones), default}. */
int api_config_providers(struct engine *E, const cJSON *p, struct jw *w, struct err *e);
/* GET /provider: {all: Provider[], default, connected: [id...]}. */
int api_provider_list(struct engine *E, const cJSON *p, struct jw *w, struct err *e);
/* GET /provider/auth: {} (no provider is signed in to through the gateway). */
int api_provider_auth(struct engine *E, const cJSON *p, struct jw *w, struct err *e);
/* GET /config: OpenCode's Config, from agentgate's config. */
int api_config_get(struct engine *E, const cJSON *p, struct jw *w, struct err *e);

/* GET /command: Command[] (api_command.c). */
int api_command_list(struct engine *E, const cJSON *p, struct jw *w, struct err *e);
/* WS session.command: the command's prompt, answered as session.prompt_async. */
int api_session_command(struct engine *E, const cJSON *p, struct jw *w, struct err *e);
/* GET /path, POST /log, GET /session/{id}/todo (api_app.c). */
int api_path_get(struct engine *E, const cJSON *p, struct jw *w, struct err *e);
int api_app_log(struct engine *E, const cJSON *p, struct jw *w, struct err *e);
int api_session_todo(struct engine *E, const cJSON *p, struct jw *w, struct err *e);

#endif
