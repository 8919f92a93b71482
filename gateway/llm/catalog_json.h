/* catalog_json: a catalog model written in models.dev's shape, the one OpenCode's config
 * (provider.NAME.models) and the v1 SDK's provider list use, for GET /config, GET
 * /provider and `agentgate models`. Each writes members into the object the caller has
 * open (the caller writes the id it wants). Pure; any thread. */
#ifndef AG_CATALOG_JSON_H
#define AG_CATALOG_JSON_H
#include "catalog.h"
#include "jw.h"

/* attachment, reasoning, temperature, tool_call, modalities {input, output}. */
void catalog_write_flags(struct jw *w, const struct model_info *mi);
/* name, release_date (when known), the flags above, cost {input, output, cache_read,
 * cache_write} (USD per million tokens), limit {context, output} (0: unknown). */
void catalog_write_modelsdev(struct jw *w, const struct model_info *mi);

#endif
