/* agentgate: the command-line entry point. */
#include "cli.h"
#include "cmd_attach.h"
#include "cmd_config.h"
#include "cmd_models.h"
#include "cmd_run.h"
#include "jsonin.h"

#include <agentgate/client.h>
#include <agentgate/plugin.h>

#include <stdio.h>

int cmd_serve(const struct cli *c);

static void print_key(void *arg, const char *path)
{
	puts(path);
}

int main(int argc, char **argv)
{
	struct cli c;
	char err[512];
	jsonin_init(); /* before any thread: cJSON's allocation hooks */
	if (cli_parse(&c, argc, argv, err, sizeof(err))) {
		fprintf(stderr, "agentgate: %s\n%s", err, cli_command_usage(c.cmd));
		cli_free(&c);
		return 2;
	}
	int rc = 0;
	if (c.help) {
		fputs(cli_command_usage(c.cmd), stdout);
		cli_free(&c);
		return 0;
	}
	switch (c.cmd) {
	case CLI_RUN:
		rc = cmd_run(&c);
		break;
	case CLI_SERVE:
		rc = cmd_serve(&c);
		break;
	case CLI_ATTACH:
		rc = cmd_attach(&c);
		break;
	case CLI_CONFIG:
		rc = c.list_keys ? (config_keys(print_key, NULL), 0) : cmd_config(&c);
		break;
	case CLI_MODELS:
		rc = cmd_models(&c);
		break;
	case CLI_VERSION:
		printf("agentgate %s (plugin ABI %d.%d, client library %d.%d)\n", AGENTGATE_VERSION,
		       AG_ABI_MAJOR, AG_ABI_MINOR, AG_CLIENT_VERSION_MAJOR, AG_CLIENT_VERSION_MINOR);
		break;
	default:
		fputs(cli_usage(), stdout);
	}
	cli_free(&c);
	return rc;
}
