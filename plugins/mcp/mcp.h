/* mcp.h: what the mcp plugin's modules share. Two threads: the loop (mcp.c: options,
 * tool registration, the status record, tool run/cancel) and one I/O thread (io.c) that
 * owns every server's process or HTTP session (server.c over stdio.c / http.c). They
 * meet only through io_push (loop → I/O: a call or a cancel) and host->post
 * (I/O → loop: a server's new state or tool list, as a struct mcp_update). */
#ifndef MCP_MCP_H
#define MCP_MCP_H

#include "plug.h"
#include "rpc.h"
#include "status.h"
#include "tools.h"

#include <curl/curl.h>
#include <stdint.h>
#include <sys/types.h>

enum srv_type { SRV_LOCAL, SRV_REMOTE };

/* One configured server. Filled on the loop in on_load, read-only afterwards. */
struct srv_conf {
	char *name;
	enum srv_type type;
	char **argv;          /* local: the command, NULL-terminated */
	char **envp;          /* local: the gateway's environment less the secrets, plus
			       * "environment" */
	char *url;            /* remote */
	struct curl_slist *headers; /* remote: "headers", as "Name: value" lines */
	int enabled;
	int64_t timeout_ms;   /* bound on a tools/call (the tool's timeout) */
	char *error;          /* a config error: the server never starts (state failed) */
};

/* The plugin's knobs (options) and the host, shared read-only by both threads. */
struct mcp_env {
	const struct ag_host *host;
	ag_plugin *self;
	int64_t restart_ms, restart_max_ms;
	int64_t startup_ms;   /* bound on initialize and each tools/list page */
};

/* config.c (loop) */
/* The servers of mcp_json (an object of NAME: server), in its order; a server whose
 * entry is malformed gets ->error. Returns 0, or -1 with why (mcp is not an object). */
int conf_parse(const char *mcp_json, char *const *secrets, int64_t default_timeout_ms,
	       struct srv_conf **out, int *n, char *why, size_t why_len);
/* Merges options' "mcp" over the setting's (options win per name) into one object. */
char *conf_merge(const char *setting_json, const cJSON *options_mcp);
void conf_free(struct srv_conf *c, int n);

/* ---- I/O thread → loop ---------------------------------------------------------- */

/* A server's news, posted to the loop (mcp.c frees it). */
struct mcp_update {
	int server;
	enum srv_state state;
	char *error;       /* NULL when none */
	int restarts;
	int pid;           /* local and running: its process, else 0 */
	int has_tools;     /* tools/ntools are a new list (else the registered stay) */
	struct tooldef *tools;
	int ntools;
};
void mcp_post_update(struct mcp_update *u); /* mcp.c: any thread; takes u */

/* ---- loop → I/O thread ---------------------------------------------------------- */

enum io_cmd_kind { CMD_CALL, CMD_CANCEL };
struct io_cmd {
	enum io_cmd_kind kind;
	int server;
	uint64_t call;   /* the host's tool call id */
	char *tool;      /* CALL: the server's own name of the tool */
	char *args;      /* CALL: the arguments object, JSON */
	struct io_cmd *next;
};

/* io.c */
int io_start(const struct mcp_env *env, struct srv_conf *conf, int n, char *why,
	     size_t why_len);
/* any: hands cmd (taken) to the I/O thread. */
void io_push(struct io_cmd *cmd);
/* loop: stops the thread (every server's process killed, pending calls failed). */
void io_stop(void);
void io_cmd_free(struct io_cmd *c);

/* ---- the I/O thread's view of a server -------------------------------------------- */

enum pend_kind { P_INIT, P_LIST, P_CALL };
struct pending {
	int64_t id;        /* the JSON-RPC id */
	enum pend_kind kind;
	uint64_t call;     /* P_CALL: the host's call id */
	char *tool;        /* P_CALL: the tool (for messages) */
	int64_t deadline;  /* P_INIT, P_LIST: when the server is given up (ms, monotonic) */
	struct pending *next;
};

struct stdio_proc {
	pid_t pid;          /* 0: none */
	int in, out, err;   /* pipes; -1 when closed */
	struct linebuf outl, errl;
	char *wbuf;         /* what stdin has not taken yet */
	size_t wlen, wcap;
	char last_err[256]; /* the last stderr line, for the failure message */
	int64_t exit_deadline; /* stdout ended: reap by then, else kill */
};

struct http_conn; /* http.c */

struct server {
	const struct mcp_env *env;
	struct srv_conf *conf;
	int idx;
	enum srv_state state;
	char error[512];
	int started, running; /* started once; a process or session is live now */
	int restarts;
	int64_t backoff_ms, restart_at, up_since;
	int64_t next_id;
	struct pending *pending;
	cJSON *inbox;       /* messages the transports parsed, not yet handled */
	cJSON *acc;         /* tools/list pages so far (non-NULL: a listing runs) */
	int pages;
	int relist;         /* list_changed during a listing: list again after it */
	char protocol[32];  /* the negotiated protocol version */
	struct stdio_proc proc;
	struct http_conn *http;
	CURLM *multi;       /* the I/O thread's (remote servers' transfers) */
};

/* server.c (I/O thread) */
void server_init(struct server *s, const struct mcp_env *env, struct srv_conf *c, int idx,
		 CURLM *multi);
void server_tick(struct server *s, int64_t now);      /* starts, timeouts, restarts */
int64_t server_next_deadline(const struct server *s); /* 0: none */
void server_call(struct server *s, struct io_cmd *cmd);
int server_cancel(struct server *s, uint64_t call);   /* 1 if it had the call */
void server_shutdown(struct server *s);
/* from the transports */
void server_on_message(struct server *s, const cJSON *msg);
void server_on_down(struct server *s, const char *why);
void server_request_failed(struct server *s, int64_t id, const char *why);
/* A parsed message (taken) waits in the inbox; server_dispatch handles the inbox once
 * the transport's callbacks have returned. */
void server_inbox(struct server *s, cJSON *msg);
void server_dispatch(struct server *s);
int64_t mono_ms(void);

/* stdio.c (I/O thread) */
int stdio_start(struct server *s, char *why, size_t why_len);
int stdio_send(struct server *s, const char *line);
/* Its descriptors for poll: fills up to 3, returns how many. */
int stdio_fds(struct server *s, struct curl_waitfd *fds);
void stdio_ready(struct server *s, const struct curl_waitfd *fd);
void stdio_tick(struct server *s, int64_t now);
int64_t stdio_deadline(const struct server *s); /* 0: none */
void stdio_stop(struct server *s);
/* Reaps stopped processes; wait: kill and wait for all of them (unloading). */
void stdio_reap(int wait);

/* http.c (I/O thread) */
int http_start(struct server *s, char *why, size_t why_len);
/* POSTs one message; id: the request it carries, or -1 (a notification or response). */
int http_send(struct server *s, const char *body, int64_t id);
void http_connected(struct server *s); /* opens the GET stream for server messages */
void http_cancel(struct server *s, int64_t id); /* drops the transfer awaiting id */
void http_done(CURL *easy, CURLcode res);
void http_tick(struct server *s, int64_t now);
int64_t http_deadline(const struct server *s); /* 0: none */
void http_stop(struct server *s);

#endif
