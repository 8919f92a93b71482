#include "cli.h"
#include "config.h"
#include "paths.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Each command's synopsis, shared by the overview and the command's own --help. */
#define SERVE_SYNOPSIS                                                                      \
	"  agentgate serve [--host 127.0.0.1] [--port 4096] [--data DIR] [--config FILE]\n"   \
	"                  [--plugin PATH.so]... [--token TOKEN | --token-file FILE]\n"       \
	"                  [--insecure] [--web DIR] [--workspace DIR] [--store STORE]\n"   \
	"                  [--bus local|nats://HOST:PORT --node NAME --lease-ms N]\n"
#define RUN_SYNOPSIS                                                                        \
	"  agentgate run [--format default|json] [--session ID] [--agent NAME]\n"              \
	"                [--model PROVIDER/MODEL] [--data DIR] [--config FILE] [--plugin PATH.so]...\n" \
	"                [--workspace DIR] [--store STORE] [--yes] PROMPT...\n"
#define ATTACH_SYNOPSIS                                                                     \
	"  agentgate attach URL [--session ID] [--format default|json] [--token T | --token-file F]\n" \
	"                [--agent NAME] [--model PROVIDER/MODEL] [--yes] [PROMPT...]\n"
#define CONFIG_SYNOPSIS                                                                     \
	"  agentgate config check FILE     validates a config, naming each problem\n"          \
	"  agentgate config keys           lists every option the config takes\n"
#define MODELS_SYNOPSIS                                                                     \
	"  agentgate models [--format default|json] [--config FILE] [--model PROVIDER/MODEL]\n" \
	"                  lists the model catalog: limits, capabilities, costs, connected\n"
#define ENGINE_FLAGS                                                                        \
	"  --model PROVIDER/MODEL   the default model (scripted/demo)\n"                       \
	"  --stall-timeout-ms N     no content token for N ms fails a stream (180000)\n"       \
	"  --openai-base-url URL, --anthropic-base-url URL   where the providers are\n"        \
	"  --data DIR               the data directory (./data), one owner at a time\n"       \
	"  --config FILE            else $AGENTGATE_CONFIG, else the installation's\n"        \
	"  --plugin PATH.so         load a plugin (repeatable)\n"                             \
	"  --workspace DIR          the working directory of new root sessions\n"             \
	"  --store STORE            sqlite:PATH (DIR/agentgate.db) or postgres://USER@HOST:PORT/DB\n"
#define ENV_NOTE                                                                            \
	"env: AGENTGATE_STALL_TIMEOUT_MS, AGENTGATE_TOKEN, AGENTGATE_LOG, OPENAI_BASE_URL,\n"  \
	"     OPENAI_API_KEY, ANTHROPIC_BASE_URL, ANTHROPIC_API_KEY\n"

const char *cli_usage(void)
{
	return "usage:\n" SERVE_SYNOPSIS RUN_SYNOPSIS ATTACH_SYNOPSIS CONFIG_SYNOPSIS MODELS_SYNOPSIS
	       "  agentgate --version\n"
	       "  agentgate COMMAND --help        that command's usage\n"
	       "run, attach: permission asks go to the terminal (y/n/always); without one they\n"
	       "     are rejected unless --yes allows every ask. attach without PROMPT follows\n"
	       "     --session until interrupted\n"
	       "common: --model PROVIDER/MODEL (default scripted/demo), --stall-timeout-ms N,\n"
	       "        --openai-base-url URL, --anthropic-base-url URL\n"
	       "store: --store sqlite:PATH (default: DIR/agentgate.db) or postgres://USER@HOST:PORT/DB\n"
	       "config: --config FILE, else $AGENTGATE_CONFIG, else the installation's\n"
	       "        (SYSCONFDIR/agentgate/config.json beside an installed binary)\n" ENV_NOTE;
}

const char *cli_command_usage(enum cli_cmd cmd)
{
	switch (cmd) {
	case CLI_SERVE:
		return "usage:\n" SERVE_SYNOPSIS
		       "Serves sessions over HTTP (OpenCode's API), SSE and WebSocket until SIGTERM.\n"
		       "  --host ADDR              the address to listen on (127.0.0.1); another\n"
		       "                           than loopback needs a token (or --insecure)\n"
		       "  --port N                 the port (4096)\n"
		       "  --token T, --token-file F   clients must send it (also AGENTGATE_TOKEN)\n"
		       "  --web DIR                the web UI's files\n"
		       "  --bus nats://HOST:PORT   a cluster node: the event log on NATS JetStream,\n"
		       "                           the store (postgres://) shared with the other\n"
		       "                           nodes; local (the default) keeps it in the store\n"
		       "  --node NAME              this node's name among them (HOST-PORT)\n"
		       "  --lease-ms N             a node's session leases expire after N ms (10000)\n"
		       ENGINE_FLAGS ENV_NOTE;
	case CLI_RUN:
		return "usage:\n" RUN_SYNOPSIS
		       "Runs one prompt in-process and prints the reply (exit 0 completed, 1 failed,\n"
		       "2 usage, 130 interrupted).\n"
		       "  --format default|json    the reply as text, or OpenCode's NDJSON lines\n"
		       "  --session ID             continue a session\n"
		       "  --agent NAME             the agent that answers\n"
		       "  --yes                    allow every permission ask (else the terminal asks)\n"
		       ENGINE_FLAGS ENV_NOTE;
	case CLI_ATTACH:
		return "usage:\n" ATTACH_SYNOPSIS
		       "Runs a prompt on a running gateway (or follows --session without PROMPT)\n"
		       "and prints it as run does, exiting as run does.\n"
		       "  --format default|json    the reply as text, or OpenCode's NDJSON lines\n"
		       "  --session ID             the session to prompt or follow\n"
		       "  --token T, --token-file F   the gateway's token (also AGENTGATE_TOKEN)\n"
		       "  --agent NAME, --model PROVIDER/MODEL   for this prompt\n"
		       "  --yes                    allow every permission ask (else the terminal asks)\n";
	case CLI_CONFIG:
		return "usage:\n" CONFIG_SYNOPSIS
		       "check exits 0 when the file is good, 1 naming each problem: unknown keys by\n"
		       "their path, values of the wrong type, what the gateway's readers refuse.\n";
	case CLI_MODELS:
		return "usage:\n" MODELS_SYNOPSIS
		       "  --format default|json    a table, or the catalog as JSON\n"
		       "  --config FILE            else $AGENTGATE_CONFIG, else the installation's\n"
		       "  --model PROVIDER/MODEL   the default model, marked in the list\n"
		       "  --openai-base-url URL, --anthropic-base-url URL   where the providers are\n";
	default:
		return cli_usage();
	}
}

enum arg_kind { A_STR, A_PORT, A_MS, A_FORMAT, A_PLUGIN, A_FLAG };

struct opt {
	const char *name;
	enum arg_kind kind;
	size_t off;     /* into struct cli */
	unsigned cmds;  /* bit per command that accepts it */
};

#define SRV (1u << CLI_SERVE)
#define RUN (1u << CLI_RUN)
#define ATT (1u << CLI_ATTACH)
#define MOD (1u << CLI_MODELS)
#define O(f) offsetof(struct cli, f)

static const struct opt opts[] = {
	{"host", A_STR, O(host), SRV},
	{"port", A_PORT, O(port), SRV},
	{"data", A_STR, O(data), SRV | RUN},
	{"config", A_STR, O(config), SRV | RUN | MOD},
	{"plugin", A_PLUGIN, 0, SRV | RUN},
	{"token", A_STR, O(token), SRV | ATT},
	{"token-file", A_STR, O(token_file), SRV | ATT},
	{"web", A_STR, O(web_root), SRV},
	{"insecure", A_FLAG, O(insecure), SRV},
	{"workspace", A_STR, O(workspace), SRV | RUN},
	{"store", A_STR, O(store), SRV | RUN},
	{"node", A_STR, O(node), SRV},
	{"lease-ms", A_MS, O(lease_ms), SRV},
	{"bus", A_STR, O(bus), SRV},
	{"yes", A_FLAG, O(yes), RUN | ATT},
	{"format", A_FORMAT, O(json), RUN | ATT | MOD},
	{"session", A_STR, O(session), RUN | ATT},
	{"agent", A_STR, O(agent), RUN | ATT},
	{"model", A_STR, O(model), SRV | RUN | ATT | MOD},
	{"stall-timeout-ms", A_MS, O(stall_ms), SRV | RUN},
	{"openai-base-url", A_STR, O(openai_base_url), SRV | RUN | MOD},
	{"anthropic-base-url", A_STR, O(anthropic_base_url), SRV | RUN | MOD},
};

static const char *cmd_name(enum cli_cmd c)
{
	return c == CLI_SERVE ? "serve" : c == CLI_ATTACH ? "attach" : c == CLI_CONFIG ? "config"
	       : c == CLI_MODELS ? "models" : "run";
}

static int set_value(struct cli *c, const struct opt *o, const char *v, char *err, size_t n)
{
	char *base = (char *)c;
	switch (o->kind) {
	case A_STR:
		*(const char **)(base + o->off) = v;
		return 0;
	case A_PORT: {
		char *end;
		long p = strtol(v, &end, 10);
		if (*v && !*end && p >= 0 && p <= 65535) {
			c->port = (int)p;
			return 0;
		}
		snprintf(err, n, "--port %s: expected a number from 0 to 65535", v);
		return -1;
	}
	case A_MS:
		*(int64_t *)(base + o->off) = config_parse_ms(v);
		if (*(int64_t *)(base + o->off) > 0)
			return 0;
		snprintf(err, n, "--%s %s: expected a positive number of milliseconds", o->name, v);
		return -1;
	case A_FORMAT:
		if (!strcmp(v, "json") || !strcmp(v, "default")) {
			c->json = !strcmp(v, "json");
			return 0;
		}
		snprintf(err, n, "--format %s: expected default or json", v);
		return -1;
	case A_PLUGIN:
		if (c->nplugins == CLI_MAX_PLUGINS) {
			snprintf(err, n, "--plugin: at most %d plugins", CLI_MAX_PLUGINS);
			return -1;
		}
		c->plugins[c->nplugins++] = v;
		return 0;
	case A_FLAG:
		*(int *)(base + o->off) = 1;
		return 0;
	}
	return -1;
}

/* Handles argv[*i] (a --flag or --flag=value), consuming a value when needed. */
static int parse_flag(struct cli *c, int argc, char **argv, int *i, char *err, size_t n)
{
	const char *arg = argv[*i] + 2;
	const char *eq = strchr(arg, '=');
	size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
	for (size_t k = 0; k < sizeof(opts) / sizeof(opts[0]); k++) {
		const struct opt *o = &opts[k];
		if (strlen(o->name) != len || strncmp(o->name, arg, len))
			continue;
		if (!(o->cmds & (1u << c->cmd))) {
			snprintf(err, n, "flag --%s is not accepted by agentgate %s", o->name,
				 cmd_name(c->cmd));
			return -1;
		}
		if (o->kind == A_FLAG)
			return eq ? (snprintf(err, n, "flag --%s takes no value", o->name), -1)
				  : set_value(c, o, NULL, err, n);
		const char *v = eq ? eq + 1 : (*i + 1 < argc ? argv[++*i] : NULL);
		if (!v) {
			snprintf(err, n, "flag --%s needs a value", o->name);
			return -1;
		}
		return set_value(c, o, v, err, n);
	}
	snprintf(err, n, "unknown flag --%.*s for agentgate %s (see agentgate %s --help)",
		 (int)len, arg, cmd_name(c->cmd), cmd_name(c->cmd));
	return -1;
}

static int add_word(struct cli *c, const char *w)
{
	size_t old = c->prompt ? strlen(c->prompt) : 0;
	char *p = realloc(c->prompt, old + strlen(w) + 2);
	if (!p)
		return -1;
	if (old)
		p[old++] = ' ';
	strcpy(p + old, w);
	c->prompt = p;
	return 0;
}

static int parse_command(struct cli *c, const char *w, char *err, size_t n)
{
	if (!strcmp(w, "serve"))
		c->cmd = CLI_SERVE;
	else if (!strcmp(w, "run"))
		c->cmd = CLI_RUN;
	else if (!strcmp(w, "attach"))
		c->cmd = CLI_ATTACH;
	else if (!strcmp(w, "config"))
		c->cmd = CLI_CONFIG;
	else if (!strcmp(w, "models"))
		c->cmd = CLI_MODELS;
	else if (!strcmp(w, "help") || !strcmp(w, "--help") || !strcmp(w, "-h"))
		c->cmd = CLI_HELP;
	else if (!strcmp(w, "version") || !strcmp(w, "--version"))
		c->cmd = CLI_VERSION;
	else {
		snprintf(err, n, "unknown command \"%s\" (expected serve, run, attach, config or "
			 "models)", w);
		return -1;
	}
	return 0;
}

/* The first line of the file, without its line ending. */
static int read_token_file(struct cli *c, char *err, size_t n)
{
	char buf[1024];
	FILE *f = fopen(c->token_file, "r");
	if (!f) {
		snprintf(err, n, "--token-file %s: cannot read it (%s)", c->token_file, strerror(errno));
		return -1;
	}
	size_t len = fread(buf, 1, sizeof(buf) - 1, f);
	int bad = ferror(f);
	fclose(f);
	buf[len] = 0;
	buf[strcspn(buf, "\r\n")] = 0;
	if (bad || !*buf) {
		snprintf(err, n, "--token-file %s: %s", c->token_file,
			 bad ? "cannot read it" : "the file is empty (expected the token on its first line)");
		return -1;
	}
	c->token_read = strdup(buf);
	c->token = c->token_read;
	return c->token ? 0 : -1;
}

int cli_parse(struct cli *c, int argc, char **argv, char *err, size_t n)
{
	memset(c, 0, sizeof(*c));
	c->host = "127.0.0.1";
	c->port = 4096;
	c->token = getenv("AGENTGATE_TOKEN");
	if (argc < 2) {
		snprintf(err, n, "missing command (expected serve, run, attach, config or models)");
		return -1;
	}
	if (parse_command(c, argv[1], err, n))
		return -1;
	/* agentgate help COMMAND: that command's usage */
	if (c->cmd == CLI_HELP && argc > 2) {
		if (parse_command(c, argv[2], err, n))
			return -1;
		c->help = 1;
		return 0;
	}
	if (c->cmd == CLI_HELP || c->cmd == CLI_VERSION)
		return 0;
	/* COMMAND --help (or -h) anywhere before "--": the usage, whatever else is there */
	for (int i = 2; i < argc && strcmp(argv[i], "--"); i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			c->help = 1;
			return 0;
		}
	int words_only = 0, nconfig = 0;
	const char *config_words[2] = {NULL, NULL};
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		if (!words_only && !strcmp(a, "--")) {
			words_only = 1;
		} else if (!words_only && !strncmp(a, "--", 2)) {
			if (parse_flag(c, argc, argv, &i, err, n))
				return -1;
		} else if (!words_only && a[0] == '-' && a[1]) {
			snprintf(err, n, "unknown flag %s for agentgate %s (see agentgate %s --help)",
				 a, cmd_name(c->cmd), cmd_name(c->cmd));
			return -1;
		} else if (c->cmd == CLI_ATTACH && !c->url) {
			c->url = a;
		} else if (c->cmd == CLI_RUN || c->cmd == CLI_ATTACH) {
			if (add_word(c, a))
				return -1;
		} else if (c->cmd == CLI_CONFIG && nconfig < 2) {
			config_words[nconfig++] = a;
		} else if (c->cmd == CLI_CONFIG) {
			snprintf(err, n, "agentgate config check takes one file (got \"%s\" too)", a);
			return -1;
		} else {
			snprintf(err, n, "agentgate %s takes no arguments (got \"%s\")",
				 cmd_name(c->cmd), a);
			return -1;
		}
	}
	if (c->token_file && read_token_file(c, err, n))
		return -1;
	/* serve, run and models without --config: $AGENTGATE_CONFIG, else the one installed
	 * with the binary (a build tree's binary has none, so tests never read an installed
	 * one) */
	if ((c->cmd == CLI_SERVE || c->cmd == CLI_RUN || c->cmd == CLI_MODELS) && !c->config) {
		const char *env = getenv("AGENTGATE_CONFIG");
		if (env && *env)
			c->config = env;
		else if (!paths_beside_exe(AG_REL_CONFIG, c->config_found, sizeof(c->config_found)))
			c->config = c->config_found;
	}
	if (c->cmd == CLI_RUN && (!c->prompt || !*c->prompt)) {
		snprintf(err, n, "agentgate run needs a prompt: agentgate run \"your message\"");
		return -1;
	}
	if (c->cmd == CLI_ATTACH && !c->url) {
		snprintf(err, n, "agentgate attach needs the gateway's URL: agentgate attach "
			 "http://127.0.0.1:4096 \"your message\"");
		return -1;
	}
	if (c->cmd == CLI_ATTACH && (!c->prompt || !*c->prompt) && !c->session) {
		snprintf(err, n, "agentgate attach needs a prompt, or --session ID to follow");
		return -1;
	}
	if (c->cmd == CLI_CONFIG) {
		c->list_keys = config_words[0] && !strcmp(config_words[0], "keys") && !config_words[1];
		if (!c->list_keys &&
		    (!config_words[0] || strcmp(config_words[0], "check") || !config_words[1])) {
			snprintf(err, n, "expected: agentgate config check FILE, or agentgate config keys");
			return -1;
		}
		c->check = config_words[1];
	}
	return 0;
}

void cli_free(struct cli *c)
{
	free(c->prompt);
	c->prompt = NULL;
	free(c->token_read);
	c->token_read = NULL;
}
