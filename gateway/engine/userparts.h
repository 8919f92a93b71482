/* userparts: a prompt's parts as its user message keeps them (OpenCode's TextPart,
 * FilePart, AgentPart, SubtaskPart). When a prompt is accepted the client's parts are
 * checked and resolved, each error naming the part and its field: text; files from
 * data: URLs (base64 or percent-encoded) or paths inside the session's directory, read
 * now and kept as base64 data: URLs; @agent mentions with the instruction OpenCode
 * gives the model for them; subtasks, which the turn runs with the task tool before the
 * model is asked. A file the turn's model cannot take is refused with the reason (the
 * model catalog says; a model only named there, its capabilities unknown, gets what it
 * is sent and the provider decides). The history reads the files back for the model.
 * Loop thread. */
#ifndef AG_USERPARTS_H
#define AG_USERPARTS_H
#include "engine_int.h"
#include "media.h"

struct upart {
	enum part_type type;
	char *text;       /* P_TEXT */
	char id[ID_MAX];  /* the client's part id, or "" for a new one */
	cJSON *extra;     /* the part's other fields, as the store keeps them (owned) */
	int client_text;  /* a text part the client sent (a submit hook may replace it) */
};

struct uparts {
	struct upart *v;
	int n, cap;
	char *text;         /* the client's text parts joined by a blank line (hooks) */
	size_t file_bytes;  /* the files' decoded bytes, together */
	int subtasks;       /* subtask parts */
};

/* Resolves p's parts (or p->text, when it has no parts) for a turn of agent with model
 * in session s. 0, or -1 with e (ERR_INVALID naming the part) and u freed. */
int uparts_parse(struct engine *E, const struct session *s, const struct prompt *p,
		 const char *agent, const char *model, struct uparts *u, struct err *e);
/* A prompt hook's text in place of the client's text parts. 0, or -1 for memory. */
int uparts_set_text(struct uparts *u, const char *text);
/* Gives m the parts (moved out of u), then saves m and them: 0, or -1 when the store
 * refused. */
int uparts_write(struct engine *E, struct msg *m, struct uparts *u);
void uparts_free(struct uparts *u);

/* 1 when model takes files of kind k (images, PDFs), per the catalog: 1 as well for a
 * model the catalog only names (capabilities unknown) or does not know. Text and
 * listings go to every model as text. */
int uparts_model_takes(struct engine *E, const char *model, enum media_kind k);

/* The history's view of a stored file part (its JSON): {mime, filename, url} added to
 * files, the array of a neutral user message (llm_types.h). */
void uparts_history_file(cJSON *files, const cJSON *part);

#endif
