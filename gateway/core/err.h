/* err: an error to hand back to a caller: a class (maps to HTTP status / JSON-RPC code /
 * exit status) and a message that names the problem. Pure. */
#ifndef AG_ERR_H
#define AG_ERR_H
#include <stdio.h>

enum err_code {
	ERR_NONE = 0,
	ERR_INVALID,   /* bad input: 400 */
	ERR_NOTFOUND,  /* unknown id: 404 */
	ERR_BUSY,      /* session busy and the caller asked to reject: 409 */
	ERR_LIMIT,     /* a named limit was reached: 429 */
	ERR_INTERNAL,  /* store or allocation failure: 500 */
	ERR_UNAVAILABLE, /* the store cannot write now, or shutting down: 503 */
};

struct err {
	enum err_code code;
	char msg[512];
};

#define err_set(e, c, ...)                                             \
	do {                                                           \
		if (e) {                                               \
			(e)->code = (c);                               \
			snprintf((e)->msg, sizeof((e)->msg), __VA_ARGS__); \
		}                                                      \
	} while (0)

#endif
