/* tools: an MCP server's tools as agentgate tools — OpenCode's names (SERVER_TOOL, every
 * character other than a letter, digit, _ or - made _), their descriptions and input
 * schemas from tools/list, and a tools/call result flattened to the text a model reads.
 * Pure (cJSON only); any thread. */
#ifndef MCP_TOOLS_H
#define MCP_TOOLS_H

#include <cjson/cJSON.h>
#include <stddef.h>

#define TOOL_NAME_MAX 64 /* the gateway's limit on a tool name */

/* One tool as registered: every string malloc'd. */
struct tooldef {
	char *name;        /* SERVER_TOOL, sanitised */
	char *orig;        /* the server's own name */
	char *description;
	char *schema;      /* the input schema, JSON (an object schema) */
};

/* in with every character outside [A-Za-z0-9_-] replaced by '_', into out (n bytes,
 * truncated to fit). */
void tools_sanitize(const char *in, char *out, size_t n);
/* OpenCode's name for tool of server: 0, or -1 when it is longer than TOOL_NAME_MAX. */
int tools_name(const char *server, const char *tool, char *out, size_t n);

/* The tools of a tools/list result array (borrowed). A tool without a usable name, with
 * a name too long, or whose name repeats another's after sanitising is skipped and
 * described in skipped (a line each, may be NULL). Returns 0, -1 out of memory. */
int tools_from_list(const char *server, const cJSON *tools, struct tooldef **out, int *n,
		    char *skipped, size_t skipped_len);
void tools_free(struct tooldef *t, int n); /* the array and its n definitions */
void tools_clear(struct tooldef *t);         /* one definition's strings */
/* A deep copy of one definition (NULL when out of memory). */
int tools_copy(struct tooldef *dst, const struct tooldef *src);
/* Same name, description and schema? */
int tools_same(const struct tooldef *a, const struct tooldef *b);

/* A tools/call result as text (malloc'd into *out): text and embedded text resources
 * as they are; images, audio, blobs and resource links described in a line each;
 * structuredContent when there is no content. Returns 1 when the result is an error
 * (isError), 0 when not, -1 out of memory. */
int tools_flatten(const cJSON *result, char **out);

#endif
