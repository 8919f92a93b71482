/* spawn: the real `agentgate serve` for tests that talk to it over sockets — a free
 * loopback port, the server started and waited for (bounded: until GET /global/health
 * answers), a raw HTTP request, and a stop by signal. No gateway code is linked. */
#ifndef AG_TEST_SPAWN_H
#define AG_TEST_SPAWN_H
#include <sys/types.h>

/* A port nothing listened on a moment ago (the kernel's choice). */
int spawn_free_port(void);
/* Starts `bin serve --port PORT --data DATA [--config CONFIG] EXTRA...` with its output
 * appended to LOG (may be NULL: /dev/null) and waits at most 15 s for GET
 * /global/health to answer (with token, if given). Its pid, or -1 (it did not come up). */
pid_t spawn_serve(const char *bin, int port, const char *data, const char *config,
		  const char *token, const char *log, const char *const *extra);
/* Sends signo and waits for the process to end: its wait status. */
int spawn_stop(pid_t pid, int signo);
/* GET path (with a Bearer token when given) on 127.0.0.1:port: the status (0: no answer),
 * and the body (malloc'd, NUL-terminated) in *body when body is not NULL. */
int spawn_http(int port, const char *method, const char *path, const char *token,
	       const char *json_body, char **body);
/* Writes text to path: 0, or -1. */
int spawn_write_file(const char *path, const char *text);

#endif
