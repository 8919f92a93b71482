/* server: the lws protocol that carries HTTP, SSE and WebSocket, access control
 * (token, Origin), the connection limit, and start-up / graceful shutdown. */
#include "server.h"
#include "plugins.h"
#include "api.h"
#include "log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

static int tokens_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned diff = (unsigned)(la ^ lb);
	for (size_t i = 0; i < la && i < lb; i++)
		diff |= (unsigned)(a[i] ^ b[i]); /* constant time over the shorter length */
	return diff == 0;
}

/* Bearer TOKEN, or Basic with TOKEN as the password (any user). */
int server_authorized(struct server *S, struct lws *wsi)
{
	if (!S->token || !*S->token)
		return 1;
	char h[512];
	if (lws_hdr_copy(wsi, h, sizeof(h), WSI_TOKEN_HTTP_AUTHORIZATION) <= 0)
		return 0;
	if (!strncasecmp(h, "Bearer ", 7))
		return tokens_equal(h + 7, S->token);
	if (strncasecmp(h, "Basic ", 6))
		return 0;
	char dec[384];
	int n = lws_b64_decode_string(h + 6, dec, sizeof(dec) - 1);
	if (n <= 0)
		return 0;
	dec[n] = 0;
	char *colon = strchr(dec, ':');
	return colon && tokens_equal(colon + 1, S->token);
}

void server_maybe_done(struct server *S);

void server_track(struct server *S, struct conn *c)
{
	c->counted = 1;
	S->nconns++;
	c->prev = &S->conns;
	c->next = S->conns.next;
	S->conns.next->prev = c;
	S->conns.next = c;
}

void server_untrack(struct server *S, struct conn *c)
{
	if (!c->counted)
		return;
	c->counted = 0;
	S->nconns--;
	c->prev->next = c->next;
	c->next->prev = c->prev;
	c->next = c->prev = NULL;
	server_maybe_done(S);
}

/* Has the client of a held connection gone? An SSE client sends nothing after its
 * request, so what it sends is read and dropped until the socket is empty (the watch
 * is edge-triggered); a held prompt's next pipelined request is left for lws to read
 * after the answer. */
static int peer_gone(struct conn *c, int hup)
{
	char buf[4096];
	int fd = lws_get_socket_fd(c->wsi), drop = c->kind == C_SSE;
	if (hup)
		return 1;
	for (int i = 0; i < 16; i++) {
		ssize_t n = recv(fd, buf, drop ? sizeof(buf) : 1, MSG_DONTWAIT | (drop ? 0 : MSG_PEEK));
		if (n == 0)
			return 1;
		if (n < 0)
			return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
		if (!drop)
			return 0;
	}
	return 1; /* an SSE client streaming data at us is not an SSE client */
}

static void held_input(struct loop_watch *w, int ev)
{
	struct conn *c = lws_container_of(w, struct conn, hup);
	if (!peer_gone(c, ev & LOOP_HUP))
		return;
	server_unwatch(c);
	lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

/* lws does not read an h1 connection while it answers, yet keeps it in its poll set
 * for input: once the client hangs up, every poll returns at once until a write
 * fails. The loop's watch tells us at once instead. */
void server_watch(struct server *S, struct conn *c)
{
	if (loop_watch(S->L, &c->hup, lws_get_socket_fd(c->wsi), LOOP_IN, held_input))
		log_warn("serve: cannot watch a held connection for a hang-up (%s)", strerror(errno));
}

void server_unwatch(struct conn *c)
{
	loop_unwatch(c->srv->L, &c->hup);
}

int server_status_of(const struct err *e, const char **name)
{
	switch (e->code) {
	case ERR_INVALID: *name = "BadRequest"; return 400;
	case ERR_NOTFOUND: *name = "NotFoundError"; return 404;
	case ERR_BUSY: *name = "SessionBusyError"; return 409;
	case ERR_LIMIT: *name = "LimitError"; return 429;
	case ERR_UNAVAILABLE: *name = "ServiceUnavailable"; return 503;
	default: *name = "UnknownError"; return 500;
	}
}

void server_error_json(struct jw *w, const char *name, const char *msg)
{
	jw_obj(w);
	jw_kstr(w, "name", name);
	jw_kstr(w, "message", msg);
	jw_key(w, "data");
	jw_obj(w);
	jw_kstr(w, "message", msg);
	jw_obj_end(w);
	jw_obj_end(w);
}

/* The name part of a Host value (host, host:port, [v6], [v6]:port), lower-cased. */
static int host_name(const char *h, char *out, size_t n)
{
	const char *end, *rest;
	if (*h == '[') {
		end = strchr(++h, ']');
		rest = end ? end + 1 : NULL;
	} else {
		end = h + strcspn(h, ":");
		rest = end;
	}
	if (!end || end == h || (size_t)(end - h) >= n || (*rest && *rest != ':') ||
	    (*rest && rest[1 + strspn(rest + 1, "0123456789")]))
		return -1;
	for (size_t i = 0; h + i < end; i++)
		out[i] = (char)tolower((unsigned char)h[i]);
	out[end - h] = 0;
	return 0;
}

static int is_ip_literal(const char *name)
{
	unsigned char a[16];
	return inet_pton(AF_INET, name, a) == 1 || inet_pton(AF_INET6, name, a) == 1;
}

/* A DNS name pointed at us by someone else (rebinding) is refused; an address is not
 * a name anyone can rebind, so a wildcard bind takes any. */
static int host_allowed(struct server *S, const char *name)
{
	char bound[256] = "";
	if (S->bind_host)
		host_name(S->bind_host, bound, sizeof(bound));
	if (!strcmp(name, "localhost") || !strcmp(name, "127.0.0.1") || !strcmp(name, "::1") ||
	    !strcmp(name, bound))
		return 1;
	for (int i = 0; i < S->nallowed; i++)
		if (!strcasecmp(name, S->allowed_hosts[i]))
			return 1;
	return (!strcmp(bound, "0.0.0.0") || !strcmp(bound, "::")) && is_ip_literal(name);
}

int server_check_access(struct server *S, struct lws *wsi, char *why, size_t n)
{
	char host[256] = "", name[256], origin[256] = "", site[32] = "";
	int hl = lws_hdr_copy(wsi, host, sizeof(host), WSI_TOKEN_HOST);
	if ((hl < 0 || (hl > 0 && (host_name(host, name, sizeof(name)) ||
				    !host_allowed(S, name))))) {
		snprintf(why, n, "Host \"%.200s\" is not a name of this server: use 127.0.0.1 or "
			 "localhost, or add the name to server.allowed_hosts in the config", host);
		return -1;
	}
	if (lws_hdr_custom_copy(wsi, site, sizeof(site), "sec-fetch-site:", 15) > 0 &&
	    !strcasecmp(site, "cross-site")) {
		snprintf(why, n, "a cross-site browser request (Sec-Fetch-Site: cross-site)");
		return -1;
	}
	int ol = lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN);
	if (!ol && !lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN))
		return 0; /* not a browser, or a same-origin GET */
	/* https too: behind a TLS-terminating proxy the browser's scheme is not ours */
	const char *o = strstr(origin, "://");
	if (o && (!strncasecmp(origin, "http://", 7) || !strncasecmp(origin, "https://", 8)) &&
	    *host && !strcasecmp(o + 3, host))
		return 0;
	snprintf(why, n, "a browser request from another origin: Origin \"%.200s\" is not "
		 "http://%.200s", origin, host);
	return -1;
}

static int reject(struct lws *wsi, unsigned status, const char *name, const char *msg,
		  const char *hname, const char *hval)
{
	struct jw w;
	jw_init(&w);
	server_error_json(&w, name, msg);
	unsigned char buf[LWS_PRE + 2048], *start = buf + LWS_PRE, *p = start,
		*end = buf + sizeof(buf) - 1;
	if (lws_add_http_common_headers(wsi, status, "application/json", w.len, &p, end) ||
	    (hname && lws_add_http_header_by_name(wsi, (const unsigned char *)hname,
						  (const unsigned char *)hval, (int)strlen(hval),
						  &p, end)) ||
	    lws_finalize_http_header(wsi, &p, end) || (size_t)(end - p) < w.len) {
		jw_free(&w);
		return -1;
	}
	memcpy(p, w.buf, w.len);
	p += w.len;
	jw_free(&w);
	lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS);
	return 1;
}

int server_confirm_upgrade(struct server *S, struct lws *wsi)
{
	char uri[64] = "", proto[128] = "";
	lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI);
	if (strcmp(uri, "/ws"))
		return reject(wsi, 404, "NotFoundError", "WebSocket endpoint is /ws", NULL, NULL);
	/* only the API's protocol may be asked for: lws would bind any of ours by name,
	 * the internal inbox included */
	if (lws_hdr_copy(wsi, proto, sizeof(proto), WSI_TOKEN_PROTOCOL) > 0 &&
	    (strstr(proto, "agentgate-inbox") || !strstr(proto, "agentgate")))
		return reject(wsi, 400, "BadRequest", "unknown WebSocket subprotocol: ask for "
			      "none, or \"agentgate\"", NULL, NULL);
	char why[600];
	if (server_check_access(S, wsi, why, sizeof(why)))
		return reject(wsi, 403, "Forbidden", why, NULL, NULL);
	if (!server_authorized(S, wsi))
		return reject(wsi, 401, "Unauthorized", "missing or wrong token",
			      "www-authenticate:", "Basic realm=\"agentgate\"");
	if (S->nconns >= S->max_conns || S->shutting_down)
		return reject(wsi, 503, "ServiceUnavailable", "too many connections or shutting down",
			      NULL, NULL);
	return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		    size_t len)
{
	struct server *S = loop_user(lws_context_user(lws_get_context(wsi)));
	struct conn *c = user;
	if (reason == LWS_CALLBACK_HTTP_CONFIRM_UPGRADE)
		return server_confirm_upgrade(S, wsi);
	/* lws 4.1.6 names why it unbinds a connection's protocol: this is the end of a
	 * keep-alive transaction, after every byte of the answer went out, whoever ended
	 * it (http.c, lws itself for a file range it cannot serve, a refused upgrade).
	 * The door holds the next request until now. */
	if (reason == LWS_CALLBACK_HTTP_DROP_PROTOCOL && S && in &&
	    !strcmp(in, "lws_http_transaction_completed"))
		door_answered(S->door, lws_get_socket_fd(wsi));
	if (!c || !S)
		return 0;
	if (!c->srv) {
		c->srv = S;
		c->wsi = wsi;
	}
	switch (reason) {
	case LWS_CALLBACK_ESTABLISHED:
	case LWS_CALLBACK_RECEIVE:
	case LWS_CALLBACK_SERVER_WRITEABLE:
	case LWS_CALLBACK_CLOSED:
		return ws_callback(c, reason, in, len);
	default:
		return http_callback(c, reason, in, len);
	}
}

static const struct lws_protocols protocols[] = {
	/* tx_packet_size: one send() per write (lws splits bigger writes at rx_buffer_size
	 * and sends one piece per POLLOUT) */
	{"agentgate", callback, sizeof(struct conn), 4096, 0, NULL, 1 << 20},
	{NULL, NULL, 0, 0, 0, NULL, 0},
};

static int is_loopback(const char *host)
{
	struct in_addr a;
	struct in6_addr a6;
	if (!strcmp(host, "localhost"))
		return 1;
	if (inet_pton(AF_INET, host, &a) == 1)
		return (ntohl(a.s_addr) >> 24) == 127;
	return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

int server_check_bind(const char *host, const char *token, int insecure, struct err *e)
{
	if (is_loopback(host) || (token && *token) || insecure)
		return 0;
	err_set(e, ERR_INVALID, "refusing to listen on %s without a token: set --token or "
		"AGENTGATE_TOKEN, or pass --insecure to allow unauthenticated access", host);
	return -1;
}

static void shutdown_fired(struct timer *t)
{
	struct server *S = lws_container_of(t, struct server, shutdown_timer);
	log_warn("serve: %d connection(s) still open after the grace period", S->nconns);
	loop_stop(S->L);
}

/* Stops accepting work, ends every stream with a final event, then stops the loop once
 * the streams are closed (or after a grace period). */
void server_shutdown(struct server *S)
{
	if (S->shutting_down)
		return;
	S->shutting_down = 1;
	log_info("serve: shutting down (%d connections)", S->nconns);
	/* first the engine, while the loop still runs: held prompts get their answers and
	 * streams their last events before they end; plugins may start nothing new */
	plugins_stop(S->P);
	engine_shutdown(S->E);
	for (struct conn *c = S->conns.next; c != &S->conns; c = c->next) {
		if (c->kind != C_SSE && c->kind != C_WS)
			continue;
		c->closing = 1; /* the writable callback sends what is queued, then the end */
		lws_callback_on_writable(c->wsi);
	}
	timer_init(&S->shutdown_timer, S->L, shutdown_fired);
	timer_arm(&S->shutdown_timer, 2000);
	server_maybe_done(S); /* nothing to drain: stop now */
}

/* Called when a connection closes during shutdown: stop as soon as no stream is left. */
void server_maybe_done(struct server *S)
{
	if (!S->shutting_down)
		return;
	for (struct conn *c = S->conns.next; c != &S->conns; c = c->next)
		if (c->kind == C_SSE || c->kind == C_WS || c->responding || api_waiting(&c->aw) ||
		    c->answer)
			return;
	loop_stop(S->L);
}

void server_detach_all(struct server *S)
{
	for (struct conn *c = S->conns.next, *next; c != &S->conns; c = next) {
		next = c->next;
		if (c->kind == C_WS)
			ws_detach(c);
		else
			http_detach(c);
	}
}

/* A client connection takes three descriptors once a request passed the front door
 * (its socket, the door's end of the pair, lws's end), where it took one: the soft limit
 * is raised for max_connections, up to the hard limit, before lws sizes its tables by it. */
static void raise_fd_limit(int max_conns)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)(max_conns + HEAD_SLACK) * 3 + 256;
	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want ? rl.rlim_max : want;
	if (setrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur < want)
		log_warn("serve: %llu open files allowed (ulimit -n), server.max_connections %d needs "
			 "%llu: raise the hard limit, or lower max_connections",
			 (unsigned long long)rl.rlim_cur, max_conns, (unsigned long long)want);
}

int server_listen(struct server *S, const char *host, int port, int ping_s, struct err *e)
{
	raise_fd_limit(S->max_conns);
	S->idle.secs_since_valid_ping = (uint16_t)ping_s;
	S->idle.secs_since_valid_hangup = (uint16_t)(ping_s * 2 + 15);
	/* lws listens on nothing: the door accepts, and hands lws what passes */
	struct loop_config lc = {.port = -1, .protocols = protocols, .user = S, .retry = &S->idle,
				 .header_pool = S->max_conns + HEAD_SLACK,
				 .head_timeout_s = HEAD_TIMEOUT_S, .header_bytes = HEAD_BYTES,
				 .keepalive_s = KEEPALIVE_S};
	S->L = loop_create(&lc);
	if (!S->L) {
		err_set(e, ERR_INTERNAL, "cannot create the libwebsockets context");
		return -1;
	}
	S->door = door_create(S->L, host, port, e);
	if (!S->door) {
		loop_destroy(S->L);
		S->L = NULL;
		return -1;
	}
	return 0;
}

void server_close(struct server *S)
{
	door_destroy(S->door);
	S->door = NULL;
	loop_destroy(S->L);
	S->L = NULL;
}
