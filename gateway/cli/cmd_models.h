/* cmd_models: `agentgate models [--format json] [--config FILE]` — the model catalog
 * (llm/catalog.h) as the gateway would serve it, read from the config and the
 * environment alone: no server, no data directory. Per model: its id, name, context and
 * output limits, capabilities, costs and whether its provider is connected
 * (provider_info.h). A table, or with --format json one JSON array (catalog_json.h's
 * models.dev shape with the full id, connected and default). Exit 0, or 1 when
 * the config cannot be read. Main thread. */
#ifndef AG_CMD_MODELS_H
#define AG_CMD_MODELS_H
#include "cli.h"

int cmd_models(const struct cli *c);

#endif
