/* cmd_serve: `agentgate serve` — the command line's flags handed to net's serve_run. */
#include "cli.h"
#include "serve.h"

#include <stdio.h>

int cmd_serve(const struct cli *c)
{
	if (c->nplugins) {
		fprintf(stderr, "agentgate serve: --plugin %s: this build has no plugin host yet "
			"(the hook ABI is a later piece of work)\n", c->plugins[0]);
		return 2;
	}
	struct serve_opts o = {
		.host = c->host, .port = c->port, .token = c->token, .insecure = c->insecure,
		.web_root = c->web_root,
		.engine = {
			.data_dir = c->data ? c->data : "./data", .config_path = c->config,
			.model = c->model, .stall_ms = c->stall_ms,
			.openai_base_url = c->openai_base_url,
			.anthropic_base_url = c->anthropic_base_url,
		},
	};
	return serve_run(&o);
}
