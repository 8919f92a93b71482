/* llm_types: the provider-neutral request, usage and error, shared by the supervisor
 * (llm.c), the providers and the pure wire codecs. No lws, no curl. */
#ifndef AG_LLM_TYPES_H
#define AG_LLM_TYPES_H
#include <cjson/cJSON.h>
#include <stdint.h>

struct llm_usage {
	int64_t input, output, reasoning, cache_read, cache_write;
};

struct llm_error {
	int status;            /* HTTP status, 0 for transport errors */
	const char *name;      /* OpenCode error name: APIError, ProviderAuthError, UnknownError */
	const char *message;   /* the provider's own message where it sent one */
	int retryable;         /* 429, 529, 5xx, dropped connection */
	int64_t retry_after_ms; /* from retry-after / retry-after-ms, 0 if absent */
	int stalled;           /* set by the supervisor for stalls and attempts over
				* limits.max_attempt_ms: both retried from retry.stall_max */
	int overflow;          /* the request is over the model's context window
				* (wire_context_overflow): never retried as it is; the
				* engine compacts the session and retries the turn once */
};

/* Attachment kinds a request's model does not take (llm_request.files_refused). */
#define LLM_FILES_IMAGE 1
#define LLM_FILES_PDF 2

/* Neutral request. messages: [{role: user|assistant|tool, content, tool_calls?:
 * [{id,name,arguments}], tool_call_id?, files?: [{mime, filename?, url}]}], a user
 * message's files being its attachments after its text, url a base64 data: URL (images
 * and PDFs go to the model as such, text and directory listings inline as text);
 * tools: [{name, description, parameters}].
 * The stream copies what it needs, except message items that are cJSON references:
 * those it keeps by reference, and their targets must live until the stream ends (the
 * session's kept history does). */
struct llm_request {
	const char *session_id; /* for log lines */
	const char *provider, *model;
	const char *system;
	const cJSON *messages;
	const cJSON *tools;
	int64_t stall_ms;       /* 0 = the configured default */
	/* This request only (a provider request hook's changes): members set at the body's
	 * top level over the provider's configured options, except the keys the wire format
	 * owns (wire_param_owned); and extra HTTP headers, name -> string value, replacing
	 * configured ones of the same name (wire_header_allowed). Either may be NULL. */
	const cJSON *params;
	const cJSON *headers;
	/* LLM_FILES_* the model does not take: such files go as a note naming them ("[the
	 * model does not take images: photo.png, image/png]"); 0: every file goes. */
	int files_refused;
};

#endif
