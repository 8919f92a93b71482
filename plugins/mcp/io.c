/* io: the plugin's one I/O thread. It owns every server (server.c) and waits on all of
 * them at once with curl_multi_poll: remote servers' transfers on the multi handle,
 * local servers' pipes as extra descriptors. The loop hands it calls and cancels
 * through a mutex-protected list and curl_multi_wakeup; it hands the loop news through
 * host->post (mcp.c). The thread blocks SIGPIPE (a server that stops reading must not
 * kill the gateway). At stop, every process is killed and reaped and every pending call
 * failed, so on_unload returns with nothing left behind. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* posix_spawn_file_actions_addclosefrom_np, memmem */
#endif
#include "mcp.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define WAIT_MAX_MS 1000

static struct io {
	const struct mcp_env *env;
	struct server *srv;
	int n;
	CURLM *multi;
	pthread_t thread;
	int started;
	pthread_mutex_t mu;
	struct io_cmd *head, *tail; /* under mu */
	int stop;                   /* under mu */
} IO = {.mu = PTHREAD_MUTEX_INITIALIZER};

void io_cmd_free(struct io_cmd *c)
{
	if (!c)
		return;
	free(c->tool);
	free(c->args);
	free(c);
}

static void refuse(struct io_cmd *c, const char *why)
{
	if (c->kind == CMD_CALL)
		IO.env->host->tool_fail(IO.env->self, c->call, why, NULL);
	io_cmd_free(c);
}

void io_push(struct io_cmd *cmd)
{
	int stopped;
	cmd->next = NULL;
	pthread_mutex_lock(&IO.mu);
	stopped = IO.stop || !IO.started;
	if (!stopped) {
		if (IO.tail)
			IO.tail->next = cmd;
		else
			IO.head = cmd;
		IO.tail = cmd;
	}
	pthread_mutex_unlock(&IO.mu);
	if (stopped)
		refuse(cmd, "the mcp plugin is unloading");
	else
		curl_multi_wakeup(IO.multi);
}

/* ---- the thread ---- */

static int take_commands(struct io_cmd **cmds)
{
	pthread_mutex_lock(&IO.mu);
	int stop = IO.stop;
	*cmds = IO.head;
	IO.head = IO.tail = NULL;
	pthread_mutex_unlock(&IO.mu);
	return stop;
}

static void run_command(struct io_cmd *c)
{
	if (c->kind == CMD_CALL && c->server >= 0 && c->server < IO.n)
		server_call(&IO.srv[c->server], c);
	for (int i = 0; c->kind == CMD_CANCEL && i < IO.n; i++)
		if (server_cancel(&IO.srv[i], c->call))
			break;
	io_cmd_free(c);
}

static int wait_ms(int64_t now)
{
	int64_t d = 0;
	for (int i = 0; i < IO.n; i++) {
		int64_t t = server_next_deadline(&IO.srv[i]);
		if (t && (!d || t < d))
			d = t;
	}
	if (!d || d - now > WAIT_MAX_MS)
		return WAIT_MAX_MS;
	return d > now ? (int)(d - now) : 0;
}

/* Waits for I/O or a wake-up, then hands each ready pipe to its server. */
static void wait_io(int64_t now)
{
	struct curl_waitfd fds[3 * IO.n + 1];
	int owner[3 * IO.n + 1], nfds = 0;
	for (int i = 0; i < IO.n; i++) {
		int k = IO.srv[i].running && IO.srv[i].conf->type == SRV_LOCAL
				? stdio_fds(&IO.srv[i], fds + nfds) : 0;
		for (int j = 0; j < k; j++)
			owner[nfds + j] = i;
		nfds += k;
	}
	curl_multi_poll(IO.multi, nfds ? fds : NULL, (unsigned)nfds, wait_ms(now), NULL);
	for (int j = 0; j < nfds; j++)
		if (fds[j].revents && IO.srv[owner[j]].running)
			stdio_ready(&IO.srv[owner[j]], &fds[j]);
}

static void run_transfers(void)
{
	int running, left;
	CURLMsg *m;
	curl_multi_perform(IO.multi, &running);
	while ((m = curl_multi_info_read(IO.multi, &left)))
		if (m->msg == CURLMSG_DONE)
			http_done(m->easy_handle, m->data.result);
}

static void *io_main(void *arg)
{
	struct io_cmd *cmds;
	sigset_t pipe;
	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe, NULL);
	while (!take_commands(&cmds)) {
		while (cmds) {
			struct io_cmd *c = cmds;
			cmds = c->next;
			run_command(c);
		}
		int64_t now = mono_ms();
		for (int i = 0; i < IO.n; i++)
			server_tick(&IO.srv[i], now);
		stdio_reap(0);
		wait_io(now);
		run_transfers();
		for (int i = 0; i < IO.n; i++)
			server_dispatch(&IO.srv[i]);
	}
	while (cmds) { /* taken together with the stop */
		struct io_cmd *c = cmds;
		cmds = c->next;
		refuse(c, "the mcp plugin is unloading");
	}
	for (int i = 0; i < IO.n; i++)
		server_shutdown(&IO.srv[i]);
	stdio_reap(1);
	return arg;
}

int io_start(const struct mcp_env *env, struct srv_conf *conf, int n, char *why,
	     size_t why_len)
{
	IO.env = env;
	IO.n = n;
	IO.stop = 0;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	IO.multi = curl_multi_init();
	IO.srv = calloc((size_t)n, sizeof(*IO.srv));
	if (!IO.multi || !IO.srv) {
		snprintf(why, why_len, "out of memory");
		goto fail;
	}
	for (int i = 0; i < n; i++)
		server_init(&IO.srv[i], env, &conf[i], i, IO.multi);
	IO.started = 1; /* before the thread: a call may come as soon as tools exist */
	if (pthread_create(&IO.thread, NULL, io_main, NULL)) {
		IO.started = 0;
		snprintf(why, why_len, "cannot start the I/O thread");
		goto fail;
	}
	return 0;
fail:
	free(IO.srv);
	IO.srv = NULL;
	if (IO.multi)
		curl_multi_cleanup(IO.multi);
	IO.multi = NULL;
	curl_global_cleanup();
	return -1;
}

void io_stop(void)
{
	if (!IO.started)
		return;
	pthread_mutex_lock(&IO.mu);
	IO.stop = 1;
	pthread_mutex_unlock(&IO.mu);
	curl_multi_wakeup(IO.multi);
	pthread_join(IO.thread, NULL);
	pthread_mutex_lock(&IO.mu);
	IO.started = 0;
	pthread_mutex_unlock(&IO.mu);
	free(IO.srv);
	IO.srv = NULL;
	curl_multi_cleanup(IO.multi);
	IO.multi = NULL;
	curl_global_cleanup();
}
