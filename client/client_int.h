/* client_int: the client library's pure parts (no libwebsockets), shared with
 * client.c and unit-tested alone: the URL, the frames the server sends, and the rule
 * that makes a resumed subscription deliver each event once. Any thread; no state. */
#ifndef AGC_CLIENT_INT_H
#define AGC_CLIENT_INT_H
#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include <agentgate/client.h>

/* ---- url.c ---- */

struct agc_url {
	int tls;         /* wss:// or https:// */
	char host[256];  /* without brackets for an IPv6 literal */
	int port;
	char path[1024]; /* ends with /ws */
	char host_header[300]; /* host[:port] as the Host header carries it */
};

/* Parses ws://, wss://, http:// or https://HOST[:PORT][/PATH][?QUERY] (the query is
 * dropped): the path gets "/ws" unless it ends with it. 0, or -1 with err naming the
 * problem. */
int agc_url_parse(const char *url, struct agc_url *u, char *err, size_t errlen);

/* ---- frame.c ---- */

enum agc_kind {
	AGC_EVENT,  /* {"method":"event","params":EVENT} */
	AGC_ANSWER, /* {"id":N,"result":R} or {"id":N,"error":{code,message}} */
	AGC_OTHER,  /* anything else: ignored */
};

/* A frame read from the server. The pointers are into root, freed by agc_frame_free. */
struct agc_frame {
	enum agc_kind kind;
	cJSON *root;
	/* AGC_ANSWER */
	int64_t id;
	const cJSON *result; /* NULL for an error */
	int code;
	const char *message;
	/* AGC_EVENT: ev's strings point into root; ev.json is owned (malloc'd) */
	struct ag_client_event ev;
};

/* Parses a text frame. 0, or -1 when it is not JSON at all (kind is then AGC_OTHER). */
int agc_frame_parse(struct agc_frame *f, const char *buf, size_t len);
void agc_frame_free(struct agc_frame *f);

/* The resume rule: 1 to deliver an event with seq (-1: it has none), 0 to drop it as
 * already delivered; *last is the newest seq delivered and moves with it. A resync
 * notice is always delivered (it says where numbering goes on). */
int agc_gate(int64_t *last, int64_t seq, int resync);

/* The JSON text of a request: {"jsonrpc":"2.0","id":ID,"method":M,"params":P}, or NULL
 * (method not a plain name of letters, digits, '.', '_', '-'; params_json not a JSON
 * object; out of memory) with err naming the problem. malloc'd with `pre` bytes of
 * headroom before the text (libwebsockets writes its frame header there); *len is the
 * text's length. */
char *agc_request(int64_t id, const char *method, const char *params_json, size_t pre,
		  size_t *len, char *err, size_t errlen);

/* The params of a subscribe: {"sessionID"?, "descendants", "since"?}; malloc'd. */
char *agc_subscribe_params(const char *session_id, int descendants, int64_t since);

#endif
