/* cmd_serve: `agentgate serve` — the command line's flags handed to net's serve_run. */
#include "cli.h"
#include "cmd_config.h"
#include "log.h"
#include "serve.h"

#include <stdio.h>

int cmd_serve(const struct cli *c)
{
	struct serve_opts o = {
		.host = c->host, .port = c->port, .token = c->token, .insecure = c->insecure,
		.web_root = c->web_root, .plugins = c->plugins, .nplugins = c->nplugins,
		.engine = {
			.data_dir = c->data ? c->data : "./data", .config_path = c->config,
			.model = c->model, .stall_ms = c->stall_ms,
			.openai_base_url = c->openai_base_url,
			.anthropic_base_url = c->anthropic_base_url, .workspace = c->workspace,
			.store = c->store, .bus = c->bus, .node = c->node, .lease_ms = c->lease_ms,
		},
	};
	log_init_from_env(LOG_INFO);
	config_warn_unknown_keys(c->config);
	return serve_run(&o);
}
