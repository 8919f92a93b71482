/* door: the front door (door.h). One relay per client connection: the client's socket,
 * and a socketpair whose far end lws serves. The client's bytes are checked
 * (doorcheck.c) before they are written to the pair; lws's bytes are copied to the
 * client as they come. Everything is non-blocking and edge-triggered: a relay remembers
 * which of its descriptors may have more to read or room to write, and pump() moves
 * bytes until nothing can move. */
#include "door.h"
#include "log.h"

#include <libwebsockets.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHUNK 65536          /* bytes moved per read */
#define HEAD_TIMEOUT_MS 5000 /* a connection's first request head, from its accept */
#define LINGER_MS 2000       /* after lws closed: the client's last bytes are read and dropped */
#define ACCEPT_RETRY_MS 100  /* out of descriptors: accept again after this */
#define FLUSH_MS 1000        /* at exit: for what lws wrote last to reach its clients */

enum up_state {
	UP_HEAD,   /* reading a request head */
	UP_BODY,   /* passing a request body on (body_left bytes to go) */
	UP_WAIT,   /* a whole request was passed on: holding what follows until it is answered */
	UP_PAUSED, /* a WebSocket upgrade was passed on: holding what follows until lws decides */
	UP_WS,     /* WebSocket frames */
	UP_CLOSED, /* nothing more is passed on (refused, or lws is gone): reading and dropping */
};

enum timer_use { T_NONE, T_HEAD, T_LINGER, T_FREE };

static const char refusal_request[] = "GET " DOOR_REFUSAL_PATH " HTTP/1.1\r\n\r\n";

struct relay {
	struct door *D;
	struct relay *next, *prev;
	int cfd;         /* the client's socket */
	int pfd, lfd;    /* the socketpair: our end, lws's end (-1 until a head passes) */
	struct loop_watch cw, pw;
	struct timer t;
	enum timer_use tuse;
	/* client -> lws: ub[0, uvalid) passed and waits for the pair; ub[uvalid, ulen) is
	 * being checked */
	unsigned char *ub;
	size_t ulen, ucap, uvalid;
	enum up_state up;
	uint64_t body_left;
	struct doorcheck_head head;
	struct doorcheck_ws ws;
	struct doorcheck_refusal refusal;
	int refused; /* a head was refused: refusal is what the server answers */
	/* lws -> client: what the client's socket did not take yet */
	unsigned char *db;
	size_t dlen, doff;
	/* readiness: may have more to read / room to write (cleared on EAGAIN or a short
	 * read or write, set again by the next event) */
	unsigned c_in : 1, c_out : 1, p_in : 1, p_out : 1;
	/* the peer hung up: a short read no longer means the socket is empty (its end
	 * may still be there to read), only EAGAIN or the end does */
	unsigned c_hup : 1, p_hup : 1;
	unsigned c_eof : 1;  /* the client sent its FIN */
	unsigned p_eof : 1;  /* lws closed its end */
	unsigned p_shut : 1; /* the client's FIN was passed on to lws */
	unsigned c_shut : 1; /* the client was sent FIN */
	unsigned dead : 1;
};

struct door {
	struct loop *L;
	struct lws_vhost *vh;
	int listen_fd;
	struct loop_watch lw;
	struct timer retry;
	struct relay relays;   /* list sentinel: every relay until it is freed */
	struct relay **by_lfd; /* relays by lws's descriptor */
	int nby;
	unsigned char scratch[CHUNK];
};

static void pump(struct relay *r);

static struct relay *lookup(struct door *D, int fd)
{
	struct relay *r = fd >= 0 && fd < D->nby ? D->by_lfd[fd] : NULL;
	return r && !r->dead ? r : NULL;
}

/* fd is lws's end of r's pair. A relay that held the number before is past it: lws
 * closed that descriptor, or the number could not have been given out again. */
static int table_set(struct door *D, int fd, struct relay *r)
{
	if (fd >= D->nby) {
		int n = D->nby ? D->nby : 256;
		while (n <= fd)
			n *= 2;
		struct relay **t = realloc(D->by_lfd, (size_t)n * sizeof(*t));
		if (!t)
			return -1;
		memset(t + D->nby, 0, (size_t)(n - D->nby) * sizeof(*t));
		D->by_lfd = t;
		D->nby = n;
	}
	if (D->by_lfd[fd] && D->by_lfd[fd] != r)
		D->by_lfd[fd]->lfd = -1;
	D->by_lfd[fd] = r;
	return 0;
}

static void table_clear(struct relay *r)
{
	if (r->lfd >= 0 && r->lfd < r->D->nby && r->D->by_lfd[r->lfd] == r)
		r->D->by_lfd[r->lfd] = NULL;
	r->lfd = -1;
}

/* Closes r's descriptors; r itself is freed by its timer, after the current batch of
 * events (one may still name it). */
static void finish(struct relay *r)
{
	if (r->dead)
		return;
	r->dead = 1;
	loop_unwatch(r->D->L, &r->cw);
	loop_unwatch(r->D->L, &r->pw);
	if (r->cfd >= 0)
		close(r->cfd);
	if (r->pfd >= 0)
		close(r->pfd);
	table_clear(r);
	free(r->ub);
	free(r->db);
	r->ub = r->db = NULL;
	timer_cancel(&r->t);
	r->tuse = T_FREE;
	timer_arm(&r->t, 0);
}

static void relay_free(struct relay *r)
{
	r->prev->next = r->next;
	r->next->prev = r->prev;
	free(r);
}

static void relay_timer(struct timer *t)
{
	struct relay *r = container_of(t, struct relay, t);
	enum timer_use use = r->tuse;
	r->tuse = T_NONE;
	if (use == T_FREE)
		relay_free(r);
	else if (use == T_HEAD || use == T_LINGER)
		finish(r); /* no head in time (lws would close it too), or done lingering */
}

static int reserve(struct relay *r, size_t need)
{
	if (need <= r->ucap)
		return 0;
	size_t cap = r->ucap ? r->ucap : 4096;
	while (cap < need)
		cap *= 2;
	unsigned char *b = realloc(r->ub, cap);
	if (!b)
		return -1;
	r->ub = b;
	r->ucap = cap;
	return 0;
}

static void on_pair(struct loop_watch *w, int ev)
{
	struct relay *r = container_of(w, struct relay, pw);
	if (ev & LOOP_HUP)
		r->p_hup = 1;
	if (ev & (LOOP_IN | LOOP_HUP))
		r->p_in = 1;
	if (ev & (LOOP_OUT | LOOP_HUP))
		r->p_out = 1;
	pump(r);
}

/* The first head passed (or was refused): lws gets its end of a new socketpair. */
static int adopt(struct relay *r)
{
	struct door *D = r->D;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv)) {
		log_warn("door: cannot make a socketpair for a connection (%s)", strerror(errno));
		return -1;
	}
	r->pfd = sv[0];
	r->lfd = sv[1];
	r->p_out = 1;
	if (table_set(D, sv[1], r) || loop_watch(D->L, &r->pw, sv[0], LOOP_IN | LOOP_OUT, on_pair)) {
		table_clear(r);
		close(sv[1]);
		return -1; /* finish() closes pfd */
	}
	lws_sock_file_fd_type u;
	u.sockfd = sv[1];
	if (!lws_adopt_descriptor_vhost(D->vh, LWS_ADOPT_SOCKET | LWS_ADOPT_HTTP, u, NULL, NULL)) {
		table_clear(r); /* lws closed sv[1] */
		log_warn("door: libwebsockets did not adopt a connection");
		return -1;
	}
	if (r->tuse == T_HEAD) {
		timer_cancel(&r->t);
		r->tuse = T_NONE;
	}
	return 0;
}

/* Appends bytes of the door's own to what passes (after everything passed before). */
static int append(struct relay *r, const void *p, size_t n)
{
	r->ulen = r->uvalid;
	if (reserve(r, r->ulen + n))
		return -1;
	memcpy(r->ub + r->ulen, p, n);
	r->ulen += n;
	r->uvalid = r->ulen;
	return 0;
}

/* A refused head or frame: what was checked before it still goes through, then the
 * door's stand-in, then nothing more. */
static int refuse(struct relay *r, const struct doorcheck_refusal *why, int frame)
{
	unsigned char close_frame[131];
	log_debug("door: refused a %s: %d %s", frame ? "frame" : "request head", why->status,
		  why->message);
	r->refusal = *why;
	r->up = UP_CLOSED;
	if (frame)
		return append(r, close_frame, doorcheck_ws_close_frame(close_frame, why->status,
								      why->message));
	r->refused = 1;
	if (append(r, refusal_request, sizeof(refusal_request) - 1))
		return -1;
	return r->pfd < 0 ? adopt(r) : 0; /* a first head: lws has no connection yet */
}

/* Checks what arrived from the client; what passes joins ub[0, uvalid). */
static int up_check(struct relay *r)
{
	int progress = 0;
	for (;;) {
		size_t avail = r->ulen - r->uvalid;
		unsigned char *p = r->ub + r->uvalid;
		int rc, refused;
		struct doorcheck_refusal why;
		switch (r->up) {
		case UP_HEAD:
			if (!avail)
				return progress;
			rc = doorcheck_head_feed(&r->head, (const char *)p, avail, &why);
			if (rc == DOORCHECK_MORE)
				return progress;
			if (rc == DOORCHECK_REFUSED)
				return refuse(r, &why, 0) ? -1 : 1;
			if (r->head.skip) { /* empty lines before the request line */
				memmove(p, p + r->head.skip, avail - r->head.skip);
				r->ulen -= r->head.skip;
			}
			r->uvalid += r->head.len;
			if (r->pfd < 0 && adopt(r))
				return -1;
			if (r->head.websocket)
				r->up = UP_PAUSED;
			else if (r->head.content_length > 0) {
				r->up = UP_BODY;
				r->body_left = (uint64_t)r->head.content_length;
			} else
				r->up = UP_WAIT;
			doorcheck_head_init(&r->head);
			progress = 1;
			break;
		case UP_BODY: {
			size_t take = r->body_left < avail ? (size_t)r->body_left : avail;
			r->uvalid += take;
			r->body_left -= take;
			if (!r->body_left)
				r->up = UP_WAIT;
			if (!take)
				return progress;
			progress = 1;
			break;
		}
		case UP_WS: {
			size_t n = doorcheck_ws_feed(&r->ws, p, avail, &refused, &why);
			r->uvalid += n;
			if (refused)
				return refuse(r, &why, 1) ? -1 : 1;
			return progress || n;
		}
		case UP_WAIT:
		case UP_PAUSED:
			return progress;
		case UP_CLOSED:
			r->ulen = r->uvalid;
			return progress;
		}
	}
}

/* Reads from the client: into ub to be checked, or to drop it once nothing passes. */
static int up_read(struct relay *r)
{
	if (!r->c_in || r->c_eof)
		return 0;
	unsigned char *to = r->D->scratch;
	size_t want = CHUNK;
	if (r->up != UP_CLOSED) {
		/* a whole head and one byte more, so an over-long one is seen (also while
		 * holding: the read notices a client that leaves); nothing while a chunk
		 * waits for lws to read it */
		size_t room = r->up == UP_BODY || r->up == UP_WS ? CHUNK : DOORCHECK_HEAD_MAX + 1;
		if (r->uvalid >= CHUNK || r->ulen - r->uvalid >= room)
			return 0;
		want = room - (r->ulen - r->uvalid);
		if (reserve(r, r->ulen + want))
			return -1;
		to = r->ub + r->ulen;
	}
	ssize_t n = recv(r->cfd, to, want, 0);
	if (n < 0) {
		if (errno == EINTR)
			return 1;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			r->c_in = 0;
			return 0;
		}
		return -1; /* reset */
	}
	if (!n) {
		r->c_eof = 1;
		return 1;
	}
	if ((size_t)n < want && !r->c_hup)
		r->c_in = 0;
	if (r->up != UP_CLOSED)
		r->ulen += (size_t)n;
	return 1;
}

/* Writes what passed to lws; passes the client's FIN on once all of it is written. */
static int up_write(struct relay *r)
{
	int progress = 0;
	if (r->pfd < 0)
		return 0;
	if (r->uvalid && r->p_out && !r->p_eof) {
		ssize_t n = send(r->pfd, r->ub, r->uvalid, MSG_NOSIGNAL);
		if (n > 0) {
			memmove(r->ub, r->ub + n, r->ulen - (size_t)n);
			r->ulen -= (size_t)n;
			r->uvalid -= (size_t)n;
			if (r->uvalid)
				r->p_out = 0;
			if (!r->ulen && r->ucap > 4096) { /* a burst is over: give its buffer back */
				free(r->ub);
				r->ub = NULL;
				r->ucap = 0;
			}
			progress = 1;
		} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
			r->p_out = 0;
		} else if (errno != EINTR) {
			/* lws closed its end: nothing more goes to it */
			r->ulen = r->uvalid = 0;
			r->up = UP_CLOSED;
			progress = 1;
		}
	}
	/* the client's FIN goes after everything it sent before it: what is held waits
	 * for its turn; an unfinished head or frame header will never be whole */
	if (r->c_eof && r->up != UP_WAIT && r->up != UP_PAUSED)
		r->ulen = r->uvalid;
	if (r->c_eof && !r->ulen && !r->p_shut) {
		shutdown(r->pfd, SHUT_WR);
		r->p_shut = 1;
		progress = 1;
	}
	return progress;
}

/* Copies what lws wrote to the client. */
static int down(struct relay *r)
{
	struct door *D = r->D;
	int progress = 0;
	for (;;) {
		if (r->dlen > r->doff) {
			if (!r->c_out)
				return progress;
			ssize_t n = send(r->cfd, r->db + r->doff, r->dlen - r->doff, MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN || errno == EWOULDBLOCK) {
					r->c_out = 0;
					return progress;
				}
				return -1;
			}
			progress = 1;
			r->doff += (size_t)n;
			if (r->doff < r->dlen) {
				r->c_out = 0;
				return progress;
			}
			free(r->db);
			r->db = NULL;
			r->dlen = r->doff = 0;
		}
		if (!r->p_in || r->p_eof || r->pfd < 0)
			return progress;
		ssize_t n = recv(r->pfd, D->scratch, CHUNK, 0);
		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				r->p_in = 0;
			else
				r->p_eof = 1; /* lws closed its end */
			return 1;
		}
		progress = 1;
		if ((size_t)n < CHUNK && !r->p_hup)
			r->p_in = 0;
		size_t sent = 0;
		if (r->c_out) {
			ssize_t m = send(r->cfd, D->scratch, (size_t)n, MSG_NOSIGNAL);
			if (m < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				return -1;
			sent = m > 0 ? (size_t)m : 0;
		}
		if (sent < (size_t)n) {
			r->c_out = 0;
			r->db = malloc((size_t)n - sent);
			if (!r->db)
				return -1;
			memcpy(r->db, D->scratch + sent, (size_t)n - sent);
			r->dlen = (size_t)n - sent;
		}
	}
}

/* Moves bytes until nothing moves, then ends what has ended. */
static void pump(struct relay *r)
{
	int progress;
	do {
		int a = up_read(r), b = a < 0 ? 0 : up_check(r), c = b < 0 ? 0 : up_write(r);
		int d = a < 0 || b < 0 ? 0 : down(r);
		if (a < 0 || b < 0 || d < 0) {
			finish(r); /* the client reset, or out of memory */
			return;
		}
		progress = a | b | c | d;
	} while (progress);
	if (r->p_eof && r->dlen == r->doff && !r->c_shut) {
		/* lws is done: the client gets its FIN, and what it still sends is read and
		 * dropped for a while, so that closing does not reset the connection under
		 * an answer it has not read yet */
		shutdown(r->cfd, SHUT_WR);
		r->c_shut = 1;
		r->up = UP_CLOSED;
		r->ulen = r->uvalid = 0;
		timer_cancel(&r->t);
		r->tuse = T_LINGER;
		timer_arm(&r->t, LINGER_MS);
		if (r->c_in)
			pump(r);
		return;
	}
	if (r->c_eof && (r->c_shut || r->pfd < 0))
		finish(r); /* both sides are done, or the client left before a head passed */
}

static void on_client(struct loop_watch *w, int ev)
{
	struct relay *r = container_of(w, struct relay, cw);
	if (ev & LOOP_HUP)
		r->c_hup = 1;
	if (ev & (LOOP_IN | LOOP_HUP))
		r->c_in = 1;
	if (ev & (LOOP_OUT | LOOP_HUP))
		r->c_out = 1;
	pump(r);
}

static void relay_new(struct door *D, int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct relay *r = calloc(1, sizeof(*r));
	if (!r) {
		close(fd);
		return;
	}
	r->D = D;
	r->cfd = fd;
	r->pfd = r->lfd = -1;
	r->c_out = 1;
	r->up = UP_HEAD;
	doorcheck_head_init(&r->head);
	r->prev = &D->relays;
	r->next = D->relays.next;
	D->relays.next->prev = r;
	D->relays.next = r;
	timer_init(&r->t, D->L, relay_timer);
	r->tuse = T_HEAD;
	timer_arm(&r->t, HEAD_TIMEOUT_MS);
	if (loop_watch(D->L, &r->cw, fd, LOOP_IN | LOOP_OUT, on_client)) {
		log_warn("door: cannot watch a connection (%s)", strerror(errno));
		finish(r);
	}
}

static void accept_all(struct door *D)
{
	for (;;) {
		int fd = accept4(D->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			relay_new(D, fd);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		/* out of descriptors or memory: the connection waits in the backlog, and no
		 * new event will say so */
		if (!timer_armed(&D->retry)) {
			log_warn("door: cannot accept a connection (%s); trying again in %d ms",
				 strerror(errno), ACCEPT_RETRY_MS);
			timer_arm(&D->retry, ACCEPT_RETRY_MS);
		}
		return;
	}
}

static void on_listen(struct loop_watch *w, int ev)
{
	(void)ev;
	accept_all(container_of(w, struct door, lw));
}

static void retry_accept(struct timer *t)
{
	accept_all(container_of(t, struct door, retry));
}

static int listen_socket(const char *host, int port, struct err *e)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	memset(&ss, 0, sizeof(ss));
	const char *h = strcmp(host, "localhost") ? host : "127.0.0.1";
	if (inet_pton(AF_INET, h, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		sl = sizeof(*s4);
	} else if (inet_pton(AF_INET6, h, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		sl = sizeof(*s6);
	} else {
		struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
		int rc = getaddrinfo(h, NULL, &hints, &ai);
		if (rc) {
			err_set(e, ERR_INVALID, "cannot listen on %s: %s", host, gai_strerror(rc));
			return -1;
		}
		memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
		sl = ai->ai_addrlen;
		freeaddrinfo(ai);
		if (ss.ss_family == AF_INET)
			s4->sin_port = htons((uint16_t)port);
		else
			s6->sin6_port = htons((uint16_t)port);
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    (ss.ss_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one))) ||
	    bind(fd, (struct sockaddr *)&ss, sl) || listen(fd, SOMAXCONN)) {
		err_set(e, ERR_INVALID, "cannot listen on %s:%d: %s", host, port, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

struct door *door_create(struct loop *L, const char *host, int port, struct err *e)
{
	struct door *D = calloc(1, sizeof(*D));
	if (!D) {
		err_set(e, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	D->L = L;
	D->relays.next = D->relays.prev = &D->relays;
	timer_init(&D->retry, L, retry_accept);
	D->vh = lws_get_vhost_by_name(loop_lws(L), "default");
	D->listen_fd = -1;
	if (!D->vh) {
		err_set(e, ERR_INTERNAL, "libwebsockets has no default vhost");
		goto fail;
	}
	D->listen_fd = listen_socket(host, port, e);
	if (D->listen_fd < 0)
		goto fail;
	if (loop_watch(L, &D->lw, D->listen_fd, LOOP_IN, on_listen)) {
		err_set(e, ERR_INTERNAL, "cannot watch the listening socket: %s", strerror(errno));
		goto fail;
	}
	return D;
fail:
	if (D->listen_fd >= 0)
		close(D->listen_fd);
	free(D);
	return NULL;
}

/* The loop has stopped: what lws wrote last (the answers and final events of a graceful
 * stop) is still in the pairs. It goes to the clients that take it before the deadline. */
static void flush_at_exit(struct relay *r, int64_t deadline_us)
{
	if (r->dead)
		return;
	r->c_out = 1;
	for (;;) {
		r->p_in = 1;
		if (down(r) < 0)
			return;
		int64_t left_ms = (deadline_us - mono_us()) / 1000;
		struct pollfd pf = {.fd = r->cfd, .events = POLLOUT};
		if (r->dlen == r->doff || left_ms <= 0 || poll(&pf, 1, (int)left_ms) != 1)
			return;
		r->c_out = 1;
	}
}

void door_destroy(struct door *D)
{
	if (!D)
		return;
	loop_unwatch(D->L, &D->lw);
	close(D->listen_fd);
	timer_cancel(&D->retry);
	int64_t deadline = mono_us() + FLUSH_MS * 1000;
	for (struct relay *r = D->relays.next; r != &D->relays; r = r->next)
		flush_at_exit(r, deadline);
	while (D->relays.next != &D->relays) {
		struct relay *r = D->relays.next;
		finish(r);
		timer_cancel(&r->t);
		relay_free(r);
	}
	free(D->by_lfd);
	free(D);
}

const struct doorcheck_refusal *door_refusal(struct door *D, int fd)
{
	struct relay *r = lookup(D, fd);
	return r && r->refused ? &r->refusal : NULL;
}

void door_answered(struct door *D, int fd)
{
	struct relay *r = lookup(D, fd);
	if (!r || (r->up != UP_WAIT && r->up != UP_PAUSED))
		return;
	r->up = UP_HEAD;
	pump(r);
}

int door_hand_over(struct door *D, int fd)
{
	struct relay *r = lookup(D, fd);
	if (!r || r->pfd < 0)
		return -1;
	r->p_in = 1;
	if (down(r) < 0) {
		finish(r);
		return -1;
	}
	/* lws does not write while this runs: an empty pair stays empty */
	if (r->dlen > r->doff || r->p_eof || dup2(r->cfd, fd) < 0)
		return -1;
	loop_unwatch(D->L, &r->cw); /* before the door's descriptor closes: the socket lives on */
	close(r->cfd);
	r->cfd = -1;
	table_clear(r);
	finish(r);
	return 0;
}

void door_flush(struct door *D, int fd)
{
	struct relay *r = lookup(D, fd);
	if (!r)
		return;
	r->p_in = 1;
	pump(r);
}

void door_websocket(struct door *D, int fd)
{
	struct relay *r = lookup(D, fd);
	if (!r || r->up != UP_PAUSED)
		return;
	r->up = UP_WS;
	pump(r);
}
