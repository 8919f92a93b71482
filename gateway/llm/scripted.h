/* scripted: the embedded provider `scripted/demo`. It needs no network and no keys:
 * rules (JSON: match on the prompt -> steps of reasoning, text and tool calls) decide
 * the reply, and tokens stream at a steady pace through the same provider interface
 * as the network providers. A step can stall or fail on purpose, for tests.
 * Rules: providers.scripted.rules (array) or providers.scripted.rules_file (path);
 * built-in demo rules apply otherwise. Loop thread only. */
#ifndef AG_SCRIPTED_H
#define AG_SCRIPTED_H
#include "config.h"
#include "llm.h"

/* Fills p with the scripted provider. 0, or -1 with e naming the bad rule or file. */
int scripted_provider(struct provider *p, struct loop *L, const struct config *C,
		      struct err *e);

#endif
