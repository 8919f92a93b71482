/* config: the JSON configuration file (--config) merged with flags and environment.
 * Parsed once at start-up; read-only afterwards. Sections owned by other modules
 * (agents, providers) stay as cJSON for those modules to read. Loop thread. */
#ifndef AG_CONFIG_H
#define AG_CONFIG_H
#include <cjson/cJSON.h>
#include <stdint.h>

#include "err.h"

#define DEFAULT_MODEL "scripted/demo"
#define DEFAULT_STALL_MS 180000
#define DEFAULT_MAX_OUTPUT_BYTES (4 * 1024 * 1024)
#define DEFAULT_MAX_ATTEMPT_MS 600000
#define DEFAULT_MAX_FILE_BYTES (5 * 1024 * 1024)

struct config {
	cJSON *root;              /* the whole file, or an empty object */
	char *dir;                /* the file's directory (relative paths in it), or NULL */
	char *model;              /* default PROVIDER/MODEL */
	int64_t stall_ms;         /* no content token for this long = stalled */
	int retry_max;            /* retries of 429/5xx/dropped (default 3) */
	int stall_retry_max;      /* retries of stalled streams (default 1) */
	int64_t retry_base_ms;    /* first backoff (default 1000), doubled per attempt */
	int64_t retry_cap_ms;     /* longest wait between attempts (default 30000) */
	int64_t connect_timeout_ms;
	int64_t first_byte_timeout_ms;
	/* limits: what one provider attempt may take, whatever the provider does */
	int64_t max_output_bytes; /* text + reasoning + tool-call arguments of one reply */
	int64_t max_attempt_ms;   /* wall clock of one attempt, start to end */
	int64_t max_file_bytes;   /* the files attached to one prompt, together (decoded) */
	int task_max_depth;       /* subagent nesting limit (default 3) */
	int task_max_running;     /* children running at once per session (default 4) */
	int64_t task_budget_ms;   /* time budget of one child (default 600000) */
	int64_t event_keep;       /* events kept in the store for replay */
	int64_t event_ring;       /* events kept in memory for replay */
	int64_t bus_buffer_bytes; /* NATS bus: this node's events waiting for NATS, at most */
	char *openai_base_url, *anthropic_base_url;
};

/* Loads path (NULL = defaults only). On error fills e naming the file and problem. */
int config_load(struct config *c, const char *path, struct err *e);
void config_free(struct config *c);
/* Applies AGENTGATE_STALL_TIMEOUT_MS, OPENAI_BASE_URL, ANTHROPIC_BASE_URL. */
int config_apply_env(struct config *c, struct err *e);
/* Applies the command line over the file and environment: each non-NULL string (and a
 * stall_ms > 0) replaces the config's value. */
void config_apply_flags(struct config *c, const char *model, int64_t stall_ms,
			const char *openai_base_url, const char *anthropic_base_url);
/* A provider's section ("providers": {"openai": {...}}) or NULL. */
const cJSON *config_provider(const struct config *c, const char *name);

/* The whole file as a NUL-terminated string (free it), or NULL with e naming the file
 * ("cannot read <what> <path>: <reason>"). */
char *config_read_file(const char *path, const char *what, struct err *e);

/* Parses a config file's text: JSON, in which // and block comments are allowed (the
 * sample config documents every option in them). NULL when it is not JSON;
 * cJSON_GetErrorPtr then points into text. */
cJSON *config_parse(char *text);

/* Parses a positive decimal integer; -1 on anything else. */
int64_t config_parse_ms(const char *s);

#endif
