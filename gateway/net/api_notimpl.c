/* api_notimpl: the routes of OpenCode's server (its OpenAPI description, as the SDK's v1
 * and v2 clients carry it) that agentgate deliberately does not implement. Each answers
 * 501 NotImplemented naming the route and why, never a bare 404, so a client learns at
 * once that it asked for something this server will not do. docs/API.md lists them.
 * Routes of the terminal UI's start-up family (under /project, /experimental and /api,
 * and /lsp, /formatter, GET /vcs) are answered elsewhere (compat.c). Pure; any thread. */
#include "api.h"

#include <stdio.h>
#include <string.h>

static const char
	CONFIG[] = "the config is read once, at start-up: edit the file and restart the gateway "
		   "(agentgate config check FILE first); GET /config shows it",
	DISPOSE[] = "agentgate has no per-directory instances to dispose of",
	UPGRADE[] = "agentgate does not upgrade itself: install a new release",
	AUTH[] = "provider keys come from the gateway's environment and config, never from a "
		 "client (GET /provider/auth offers no method)",
	MCP[] = "MCP servers come from the config's \"mcp\" section (GET /mcp shows them): they "
		"are not added, connected or signed in to through the API",
	FILES[] = "agentgate does not serve the workspace's files to clients (the workspace "
		  "plugin's tools read them for the model)",
	VCS[] = "agentgate does not report or apply version control changes (/vcs itself "
		"names the workspace's branch)",
	PTY[] = "agentgate has no terminals (pty)",
	QUESTION[] = "agentgate has no question tool: no question ever waits for an answer",
	INIT[] = "agentgate does not write AGENTS.md for a session: send that prompt yourself",
	SHARE[] = "sessions are never shared off this server",
	SHELL[] = "agentgate does not run a client's shell commands (the workspace plugin's bash "
		  "tool runs the model's, after a permission ask)",
	PART[] = "a message's parts are written by the engine alone: they are not edited or "
		 "removed one by one",
	SKILL[] = "agentgate has no skills",
	SYNC[] = "agentgate does not sync sessions between servers",
	TUI[] = "these routes drive OpenCode's own terminal UI process; agentgate runs none";

/* the route first: a pointer to an entry is a pointer to its route */
static const struct notimpl {
	struct api_route r;
	const char *why;
} routes[] = {
	{{"PATCH", "/config", NULL, {NULL}, API_NOTIMPL, 0}, CONFIG},
	{{"GET", "/global/config", NULL, {NULL}, API_NOTIMPL, 0}, CONFIG},
	{{"PATCH", "/global/config", NULL, {NULL}, API_NOTIMPL, 0}, CONFIG},
	{{"POST", "/global/dispose", NULL, {NULL}, API_NOTIMPL, 0}, DISPOSE},
	{{"POST", "/instance/dispose", NULL, {NULL}, API_NOTIMPL, 0}, DISPOSE},
	{{"POST", "/global/upgrade", NULL, {NULL}, API_NOTIMPL, 0}, UPGRADE},
	{{"PUT", "/auth/{providerID}", NULL, {NULL}, API_NOTIMPL, 0}, AUTH},
	{{"DELETE", "/auth/{providerID}", NULL, {NULL}, API_NOTIMPL, 0}, AUTH},
	{{"POST", "/provider/{providerID}/oauth/authorize", NULL, {NULL}, API_NOTIMPL, 0}, AUTH},
	{{"POST", "/provider/{providerID}/oauth/callback", NULL, {NULL}, API_NOTIMPL, 0}, AUTH},
	{{"POST", "/mcp", NULL, {NULL}, API_NOTIMPL, 0}, MCP},
	{{"POST", "/mcp/{name}/auth", NULL, {NULL}, API_NOTIMPL, 0}, MCP},
	{{"DELETE", "/mcp/{name}/auth", NULL, {NULL}, API_NOTIMPL, 0}, MCP},
	{{"POST", "/mcp/{name}/auth/authenticate", NULL, {NULL}, API_NOTIMPL, 0}, MCP},
	{{"POST", "/mcp/{name}/auth/callback", NULL, {NULL}, API_NOTIMPL, 0}, MCP},
	{{"POST", "/mcp/{name}/connect", NULL, {NULL}, API_NOTIMPL, 0}, MCP},
	{{"POST", "/mcp/{name}/disconnect", NULL, {NULL}, API_NOTIMPL, 0}, MCP},
	{{"GET", "/file", NULL, {NULL}, API_NOTIMPL, 0}, FILES},
	{{"GET", "/file/content", NULL, {NULL}, API_NOTIMPL, 0}, FILES},
	{{"GET", "/file/status", NULL, {NULL}, API_NOTIMPL, 0}, FILES},
	{{"GET", "/find", NULL, {NULL}, API_NOTIMPL, 0}, FILES},
	{{"GET", "/find/file", NULL, {NULL}, API_NOTIMPL, 0}, FILES},
	{{"GET", "/find/symbol", NULL, {NULL}, API_NOTIMPL, 0}, FILES},
	{{"GET", "/vcs/status", NULL, {NULL}, API_NOTIMPL, 0}, VCS},
	{{"GET", "/vcs/diff", NULL, {NULL}, API_NOTIMPL, 0}, VCS},
	{{"GET", "/vcs/diff/raw", NULL, {NULL}, API_NOTIMPL, 0}, VCS},
	{{"POST", "/vcs/apply", NULL, {NULL}, API_NOTIMPL, 0}, VCS},
	{{"GET", "/pty", NULL, {NULL}, API_NOTIMPL, 0}, PTY},
	{{"POST", "/pty", NULL, {NULL}, API_NOTIMPL, 0}, PTY},
	{{"GET", "/pty/shells", NULL, {NULL}, API_NOTIMPL, 0}, PTY},
	{{"GET", "/pty/{ptyID}", NULL, {NULL}, API_NOTIMPL, 0}, PTY},
	{{"PUT", "/pty/{ptyID}", NULL, {NULL}, API_NOTIMPL, 0}, PTY},
	{{"DELETE", "/pty/{ptyID}", NULL, {NULL}, API_NOTIMPL, 0}, PTY},
	{{"GET", "/pty/{ptyID}/connect", NULL, {NULL}, API_NOTIMPL, 0}, PTY},
	{{"POST", "/pty/{ptyID}/connect-token", NULL, {NULL}, API_NOTIMPL, 0}, PTY},
	{{"GET", "/question", NULL, {NULL}, API_NOTIMPL, 0}, QUESTION},
	{{"POST", "/question/{requestID}/reply", NULL, {NULL}, API_NOTIMPL, 0}, QUESTION},
	{{"POST", "/question/{requestID}/reject", NULL, {NULL}, API_NOTIMPL, 0}, QUESTION},
	{{"POST", "/session/{sessionID}/init", NULL, {NULL}, API_NOTIMPL, 0}, INIT},
	{{"POST", "/session/{sessionID}/share", NULL, {NULL}, API_NOTIMPL, 0}, SHARE},
	{{"DELETE", "/session/{sessionID}/share", NULL, {NULL}, API_NOTIMPL, 0}, SHARE},
	{{"POST", "/session/{sessionID}/shell", NULL, {NULL}, API_NOTIMPL, 0}, SHELL},
	{{"PATCH", "/session/{sessionID}/message/{messageID}/part/{partID}", NULL, {NULL},
	 API_NOTIMPL, 0}, PART},
	{{"DELETE", "/session/{sessionID}/message/{messageID}/part/{partID}", NULL, {NULL},
	 API_NOTIMPL, 0}, PART},
	{{"GET", "/skill", NULL, {NULL}, API_NOTIMPL, 0}, SKILL},
	{{"POST", "/sync/start", NULL, {NULL}, API_NOTIMPL, 0}, SYNC},
	{{"POST", "/sync/replay", NULL, {NULL}, API_NOTIMPL, 0}, SYNC},
	{{"POST", "/sync/history", NULL, {NULL}, API_NOTIMPL, 0}, SYNC},
	{{"POST", "/sync/steal", NULL, {NULL}, API_NOTIMPL, 0}, SYNC},
	{{"POST", "/tui/append-prompt", NULL, {NULL}, API_NOTIMPL, 0}, TUI},
	{{"POST", "/tui/clear-prompt", NULL, {NULL}, API_NOTIMPL, 0}, TUI},
	{{"POST", "/tui/submit-prompt", NULL, {NULL}, API_NOTIMPL, 0}, TUI},
	{{"POST", "/tui/execute-command", NULL, {NULL}, API_NOTIMPL, 0}, TUI},
	{{"POST", "/tui/open-help", NULL, {NULL}, API_NOTIMPL, 0}, TUI},
	{{"POST", "/tui/open-models", NULL, {NULL}, API_NOTIMPL, 0}, TUI},
	{{"POST", "/tui/open-sessions", NULL, {NULL}, API_NOTIMPL, 0}, TUI},
	{{"POST", "/tui/open-themes", NULL, {NULL}, API_NOTIMPL, 0}, TUI},
	{{"POST", "/tui/select-session", NULL, {NULL}, API_NOTIMPL, 0}, TUI},
	{{"POST", "/tui/show-toast", NULL, {NULL}, API_NOTIMPL, 0}, TUI},
	{{"POST", "/tui/publish", NULL, {NULL}, API_NOTIMPL, 0}, TUI},
	{{"GET", "/tui/control/next", NULL, {NULL}, API_NOTIMPL, 0}, TUI},
	{{"POST", "/tui/control/response", NULL, {NULL}, API_NOTIMPL, 0}, TUI},
};

const struct api_route *api_not_implemented(const char *method, const char *path,
					    char *allowed, size_t allowed_len)
{
	const char *best = NULL;
	/* a literal segment beats a {NAME} (/pty/shells, /pty/{ptyID}) */
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (api_match(routes[i].r.pattern, path, NULL) &&
		    (!best || api_wildcards(routes[i].r.pattern) < api_wildcards(best)))
			best = routes[i].r.pattern;
	const struct api_route *found = NULL;
	for (size_t i = 0; best && i < sizeof(routes) / sizeof(routes[0]); i++) {
		const struct api_route *r = &routes[i].r;
		if (strcmp(r->pattern, best))
			continue;
		if (!strcmp(r->http_method, method))
			found = r;
		size_t l = strlen(allowed);
		if (!strstr(allowed, r->http_method))
			snprintf(allowed + l, allowed_len - l, "%s%s", l ? "," : "", r->http_method);
	}
	return found;
}

void api_not_implemented_list(void (*fn)(void *arg, const struct api_route *r), void *arg)
{
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		fn(arg, &routes[i].r);
}

const char *api_not_implemented_why(const struct api_route *r)
{
	return r->kind == API_NOTIMPL ? ((const struct notimpl *)r)->why : "";
}
