/* template: the smallest complete agentgate plugin — copy it to start your own.
 * It registers a hook (TURN_END: it logs every turn that ends and counts them) and a
 * tool (template_turns: tells the model how many turns ended since the plugin loaded).
 * It includes <agentgate/plugin.h> and nothing else from agentgate: every gateway
 * function it calls comes from the host table that on_load receives. */
#include <agentgate/plugin.h>

#include <stdio.h>

static const struct ag_host *host; /* valid from on_load to on_unload */
static ag_plugin *self;
static long turns_ended;           /* touched on the loop only: no lock */

/* Loop. ctx and data are borrowed for the call. */
static int on_turn_end(void *user, const struct ag_ctx *ctx, void *data)
{
	const struct ag_turn_end *te = data;
	(void)user;
	turns_ended++;
	host->log(self, AG_LOG_INFO, "turn %s of session %s ended: %s (source %s)",
		  ctx->turn_id ? ctx->turn_id : "?", ctx->session_id, te->state,
		  te->source ? te->source : "?");
	return AG_HOOK_CONTINUE;
}

/* Loop. The call is ended at once here; a slow tool would hand call->id to a thread
 * of its own and call host->tool_done from there. */
static void turns_run(void *user, const struct ag_tool_call *call)
{
	char out[128];
	(void)user;
	snprintf(out, sizeof(out), "template: %ld turns ended since the plugin loaded",
		 turns_ended);
	host->tool_done(self, call->id, out, "turns ended", NULL);
}

static int template_load(ag_plugin *p, const struct ag_host *h, const char *options_json,
			 struct ag_error *err)
{
	(void)options_json; /* the config's "options" as JSON text, "{}" when none */
	host = h;
	self = p;
	turns_ended = 0;
	struct ag_tool tool = {
		.size = sizeof(tool),
		.name = "template_turns",
		.description = "Says how many turns have ended since the template plugin loaded.",
		.parameters_json = "{\"type\":\"object\",\"properties\":{}}",
		.run = turns_run,
	};
	int rc = host->hook(self, AG_HOOK_TURN_END, on_turn_end, NULL);
	if (rc) { /* err is never NULL in on_load */
		err->code = rc;
		snprintf(err->message, sizeof(err->message), "cannot register the turn_end hook");
		return rc;
	}
	/* the host copies the definition: it may live on the stack */
	return host->tool_register(self, &tool, err);
}

static const struct ag_plugin_info info = {
	.magic = AG_PLUGIN_MAGIC,
	.abi_major = AG_ABI_MAJOR,
	.abi_minor = AG_ABI_MINOR,
	.size = sizeof(struct ag_plugin_info),
	.id = "template",
	.version = "1.0.0",
	.description = "logs every turn that ends; the tool template_turns counts them",
	.on_load = template_load,
	/* on_unload may be NULL: what the plugin registered is removed by the host */
};

AG_EXPORT const struct ag_plugin_info *AG_PLUGIN_ENTRY(void)
{
	return &info;
}
