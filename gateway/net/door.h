/* door: the front door. It owns the listening socket and reads what every client sends
 * before libwebsockets does: each connection is relayed through a socketpair whose other
 * end lws serves as an adopted HTTP socket, and only bytes that pass doorcheck.c's rules
 * go through — every request head (the first and each one after it on a keep-alive
 * connection) and every WebSocket frame header. lws gets one request at a time: the
 * next one is held until the server has answered the last (lws 4.1.6 spins at 100 % CPU
 * on bytes that arrive while it answers a request that had a body, and would parse a
 * pipelined head itself). What is refused is not dropped in
 * silence: a refused head is replaced by a request of the door's own (DOOR_REFUSAL_PATH),
 * which http.c answers with the refusal's JSON error, in order after the answers to the
 * requests before it, and closes; a refused frame is replaced by a close frame with 1002,
 * which lws answers in kind. Loop thread only. */
#ifndef AG_DOOR_H
#define AG_DOOR_H
#include "doorcheck.h"
#include "err.h"
#include "loop.h"

/* The path of the door's stand-in for a refused head. A client cannot send it: the
 * door refuses a control character in a request target. */
#define DOOR_REFUSAL_PATH "/\x7f"

struct door;

/* Listens on host:port (an IPv4 or IPv6 address, or a name; "localhost" is 127.0.0.1;
 * an IPv6 address is bound v6-only) and hands what passes to L's lws vhost. NULL with e
 * set when it cannot listen. */
struct door *door_create(struct loop *L, const char *host, int port, struct err *e);
/* Closes the listening socket and every client connection's relay (lws closes its ends
 * when its context is destroyed). Before loop_destroy. */
void door_destroy(struct door *D);

/* The refusal the server must answer on its connection with lws descriptor fd (whose
 * request path is DOOR_REFUSAL_PATH), or NULL. Valid until the connection closes. */
const struct doorcheck_refusal *door_refusal(struct door *D, int fd);

/* The request last passed on lws descriptor fd is answered, and lws waits for the next
 * one (also after a WebSocket upgrade answered over HTTP): the door passes on the next
 * request it holds. */
void door_answered(struct door *D, int fd);

/* The WebSocket upgrade last passed on fd was accepted: the bytes the door held since,
 * and all that follow, are frames. */
void door_websocket(struct door *D, int fd);

/* Moves what lws wrote on fd on to the client now, as far as the client takes it: lws's
 * end of the pair has room again for a writer that found it full (a socketpair reports
 * room only while less than a quarter of its buffer is in use). */
void door_flush(struct door *D, int fd);

/* The connection on lws descriptor fd will never read a request again (an SSE stream):
 * once what lws wrote so far has reached the client, the client's socket takes the
 * pair's place under the same descriptor number (dup2), so lws writes to the client
 * itself and the door is out of the way. What the client sent after its request is
 * dropped (the stream would drop it). Watches on fd must be made after this call.
 * 0, or -1 when the door goes on relaying (the client did not take everything yet). */
int door_hand_over(struct door *D, int fd);

#endif
