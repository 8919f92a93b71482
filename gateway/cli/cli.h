/* cli: the command line (DESIGN.md "CLI"). Parses into a struct; errors name the bad
 * flag or command. Pure apart from reading the environment for AGENTGATE_TOKEN and
 * AGENTGATE_CONFIG, the file --token-file names (a token on the command line is visible
 * to every local user in /proc/PID/cmdline), and looking for the installation's default
 * config beside the binary (paths.h). */
#ifndef AG_CLI_H
#define AG_CLI_H
#include <stddef.h>
#include <stdint.h>

enum cli_cmd { CLI_NONE, CLI_SERVE, CLI_RUN, CLI_HELP, CLI_VERSION, CLI_ATTACH, CLI_CONFIG,
	       CLI_MODELS };

#define CLI_MAX_PLUGINS 32

struct cli {
	enum cli_cmd cmd;
	const char *host;
	int port;
	const char *data, *config; /* config: --config, $AGENTGATE_CONFIG or the installed one */
	const char *plugins[CLI_MAX_PLUGINS];
	int nplugins;
	int json;            /* --format json */
	const char *session, *agent, *model;
	int64_t stall_ms;    /* 0: not given */
	const char *openai_base_url, *anthropic_base_url;
	const char *token;
	const char *token_file;
	char *token_read;    /* the token read from token_file (owned; token points to it) */
	const char *web_root;
	int insecure;
	const char *workspace; /* --workspace: the default directory of new root sessions */
	const char *store;     /* --store: sqlite:PATH or postgres://... (store.h) */
	const char *node;      /* --node: a cluster node's name */
	int64_t lease_ms;      /* --lease-ms: 0 when not given */
	const char *bus;       /* --bus: local or nats://HOST:PORT (bus.h) */
	int yes;               /* run, attach --yes: allow every permission ask */
	char *prompt;        /* run, attach: the words joined by spaces (owned) */
	const char *url;     /* attach: the gateway */
	const char *check;   /* config check: the file */
	int list_keys;       /* config keys */
	int help;            /* COMMAND --help: print cli_command_usage(cmd), exit 0 */
	char config_found[4096]; /* the installation's default config, when config is it */
};

/* 0, or -1 with err naming the problem (the caller prints it and exits 2). */
int cli_parse(struct cli *c, int argc, char **argv, char *err, size_t errlen);
void cli_free(struct cli *c);
const char *cli_usage(void);
/* One command's usage (its synopsis, flags and what it does); the overview for others. */
const char *cli_command_usage(enum cli_cmd cmd);

#endif
