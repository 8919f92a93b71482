/* catalog: the models the gateway knows, with their limits, capabilities and costs.
 * Read once from the config at start-up and immutable afterwards (any thread may read
 * it then). Sources, in order:
 *   - providers.NAME.models of each provider (scripted, openai, anthropic): an array of
 *     model ids, or an object {ID: MODEL} in OpenCode's config shape, MODEL being
 *     {name, release_date, limit: {context, output}, attachment, reasoning, tool_call,
 *      temperature, modalities: {input: [text|image|pdf|audio|video...], output: [...]},
 *      cost: {input, output, cache_read, cache_write}} (every member optional);
 *   - the embedded scripted/demo;
 *   - the default model and each agent's model, when no entry names them (limits
 *     unknown: 0).
 * Costs are USD per million tokens, as OpenCode states them. No lws, no curl. */
#ifndef AG_CATALOG_H
#define AG_CATALOG_H
#include <stdint.h>

#include "config.h"
#include "err.h"

struct model_info {
	char *provider, *id, *name; /* name: the id when the config gives none */
	char *release_date;         /* "" when unknown */
	int64_t context, output;    /* token limits; 0 when unknown */
	int tool_call, attachment, reasoning, temperature;
	/* input modalities besides text (attachment is set when any is) */
	int input_image, input_pdf, input_audio, input_video;
	double cost_input, cost_output, cost_cache_read, cost_cache_write;
	int configured;             /* listed in the config or built in (not only named) */
};

struct catalog;

/* Builds the catalog from C (whose provider sections and agents it reads). NULL with
 * e naming the first bad entry by its config path. */
struct catalog *catalog_load(const struct config *C, struct err *e);
void catalog_free(struct catalog *K);
int catalog_count(const struct catalog *K);
/* Entry i, in config order per provider (scripted, openai, anthropic); NULL past the end. */
const struct model_info *catalog_at(const struct catalog *K, int i);
/* The entry of provider/model, or NULL. */
const struct model_info *catalog_find(const struct catalog *K, const char *provider,
				      const char *model);
/* The same for "PROVIDER/MODEL"; NULL for a malformed id. */
const struct model_info *catalog_lookup(const struct catalog *K, const char *id);

#endif
