/* serve: `agentgate serve` as a whole (net's public face for the command line): the
 * loop listening, the engine behind it, signals, and the graceful stop. Includes no
 * libwebsockets types. Main thread, which becomes the loop thread. */
#ifndef AG_SERVE_H
#define AG_SERVE_H
#include "engine.h"

struct serve_opts {
	const char *host;     /* address to bind (loopback without a token, unless insecure) */
	int port;
	const char *token;    /* required on every request when set */
	int insecure;         /* allow a non-loopback bind without a token */
	const char *web_root; /* --web, or NULL: $AGENTGATE_WEB, ./web, then beside the binary */
	const char *const *plugins; /* --plugin paths (each required) */
	int nplugins;
	struct engine_opts engine; /* data_dir set; the owner line is filled in here */
};

/* Reads the config's "server" section as serve_run would: 0, or -1 with e naming what is
 * wrong (`agentgate config check`). */
int serve_check_config(const char *path, struct err *e);

/* Runs until SIGINT/SIGTERM and a graceful stop: 0; 1 when it cannot listen; 2 on a bad
 * setting or a data directory in use (the reason printed on stderr). */
int serve_run(const struct serve_opts *o);

#endif
