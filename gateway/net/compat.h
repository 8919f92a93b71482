/* compat: the routes OpenCode's front ends read besides the session API — its terminal
 * UI calls every one of them at start-up — answered from what agentgate has: one
 * project (the workspace) and its git branch, the v2 API's location, agents and models;
 * and an honest empty answer where agentgate has no such thing: language servers,
 * formatters, an OpenCode console account, MCP resources, OpenCode's workspaces,
 * integrations, skills and references. Each has api_call's shape: params (an object or
 * NULL) in, the result in w, or -1 and e. Loop thread. */
#ifndef AG_COMPAT_H
#define AG_COMPAT_H
#include "api.h"

/* GET /project/current: Project {id: "global", worktree: the workspace, vcs?: "git",
 * name, time: {created, updated} (of its sessions), sandboxes: []}. */
int compat_project_current(struct engine *E, const cJSON *p, struct jw *w, struct err *e);
/* GET /project: [that Project]. */
int compat_project_list(struct engine *E, const cJSON *p, struct jw *w, struct err *e);
/* GET /project/{projectID}/directories: [{directory: the workspace}]; 404 for another id. */
int compat_project_directories(struct engine *E, const cJSON *p, struct jw *w, struct err *e);
/* GET /vcs: {branch?, default_branch?} of the workspace's git repository ({} outside one). */
int compat_vcs(struct engine *E, const cJSON *p, struct jw *w, struct err *e);
/* []: GET /lsp and GET /formatter (agentgate runs no language server and no formatter),
 * GET /experimental/workspace and …/status (no OpenCode workspaces). */
int compat_none(struct engine *E, const cJSON *p, struct jw *w, struct err *e);
/* GET /experimental/capabilities: {backgroundSubagents: false} — OpenCode's flag for
 * moving a running foreground task to the background, which agentgate cannot do (its
 * task tool's own "background" works whatever this says). */
int compat_capabilities(struct engine *E, const cJSON *p, struct jw *w, struct err *e);
/* GET /experimental/console: {consoleManagedProviders: [], switchableOrgCount: 0}. */
int compat_console(struct engine *E, const cJSON *p, struct jw *w, struct err *e);
/* GET /experimental/resource: {} (MCP servers' tools are served, not their resources). */
int compat_resources(struct engine *E, const cJSON *p, struct jw *w, struct err *e);

/* The v2 API (/api/...): {location, data} with location the workspace's LocationInfo
 * {directory, project: {id, directory}}; the location a client asks for is not read
 * (agentgate has one). */
/* GET /api/location: the LocationInfo alone. */
int compat_location(struct engine *E, const cJSON *p, struct jw *w, struct err *e);
/* GET /api/agent: AgentV2Info[] {id, model?, request, system?, description?, mode, hidden,
 * steps?, permissions} of the configured agents. */
int compat_agents_v2(struct engine *E, const cJSON *p, struct jw *w, struct err *e);
/* GET /api/model: ModelV2Info[] of the model catalog; enabled when its provider is
 * connected (provider_info.h). */
int compat_models_v2(struct engine *E, const cJSON *p, struct jw *w, struct err *e);
/* GET /api/provider: ProviderV2Info[] {id, name, api: {type: "native", url?, settings},
 * request} of the three providers. */
int compat_providers_v2(struct engine *E, const cJSON *p, struct jw *w, struct err *e);
/* GET /api/command: CommandV2Info[] {name, template, description?, agent?, model?,
 * subtask?} of the config's commands. */
int compat_commands_v2(struct engine *E, const cJSON *p, struct jw *w, struct err *e);
/* GET /api/integration, /api/skill, /api/reference: data [] (provider keys come from the
 * config and the environment, not from sign-ins; no skills; no references). */
int compat_empty_v2(struct engine *E, const cJSON *p, struct jw *w, struct err *e);

#endif
