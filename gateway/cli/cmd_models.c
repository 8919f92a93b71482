#include "cmd_models.h"
#include "catalog_json.h"
#include "config.h"
#include "jw.h"
#include "provider_info.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The config as serve would read it: the file, the environment, then the flags. */
static int load(struct config *C, const struct cli *c, struct err *e)
{
	if (config_load(C, c->config, e) || config_apply_env(C, e))
		return -1;
	config_apply_flags(C, c->model, 0, c->openai_base_url, c->anthropic_base_url);
	return 0;
}

static int connected(const struct config *C, const char *provider)
{
	struct provider_info pi;
	return !provider_info_of(C, provider, &pi) && pi.connected;
}

/* models.dev's shape (catalog_json.h), with the full id and what the gateway knows. */
static void model_json(struct jw *w, const struct config *C, const struct model_info *mi)
{
	char id[512];
	snprintf(id, sizeof(id), "%s/%s", mi->provider, mi->id);
	jw_obj(w);
	jw_kstr(w, "id", id);
	jw_kstr(w, "providerID", mi->provider);
	jw_kstr(w, "modelID", mi->id);
	catalog_write_modelsdev(w, mi);
	jw_kbool(w, "configured", mi->configured);
	jw_kbool(w, "connected", connected(C, mi->provider));
	jw_kbool(w, "default", !strcmp(id, C->model));
	jw_obj_end(w);
}

static int print_json(const struct config *C, const struct catalog *K)
{
	struct jw w;
	jw_init(&w);
	jw_arr(&w);
	for (int i = 0; i < catalog_count(K); i++)
		model_json(&w, C, catalog_at(K, i));
	jw_arr_end(&w);
	size_t len;
	char *s = jw_take(&w, &len);
	if (!s)
		return 1;
	printf("%s\n", s);
	free(s);
	return 0;
}

/* "tools,reasoning,image,pdf": what a model takes and does besides text. */
static void caps(const struct model_info *mi, char *out, size_t n)
{
	const char *names[] = {"tools", "reasoning", "image", "pdf", "audio", "video"};
	const int on[] = {mi->tool_call, mi->reasoning, mi->input_image, mi->input_pdf,
			  mi->input_audio, mi->input_video};
	out[0] = 0;
	for (int i = 0; i < 6; i++)
		if (on[i]) {
			size_t l = strlen(out);
			snprintf(out + l, n - l, "%s%s", l ? "," : "", names[i]);
		}
	if (!out[0])
		snprintf(out, n, "-");
}

static void limit(int64_t v, char *out, size_t n)
{
	if (v)
		snprintf(out, n, "%lld", (long long)v);
	else
		snprintf(out, n, "?");
}

static void print_table(const struct config *C, const struct catalog *K)
{
	int wid = 5, wname = 4;
	for (int i = 0; i < catalog_count(K); i++) {
		const struct model_info *mi = catalog_at(K, i);
		int l = (int)(strlen(mi->provider) + 1 + strlen(mi->id));
		wid = l > wid ? l : wid;
		wname = (int)strlen(mi->name) > wname ? (int)strlen(mi->name) : wname;
	}
	wid = wid > 48 ? 48 : wid;
	wname = wname > 40 ? 40 : wname;
	printf("%-*s  %-*s  %8s  %7s  %-26s  %-23s  %s\n", wid, "MODEL", wname, "NAME",
	       "CONTEXT", "OUTPUT", "CAPABILITIES", "USD/M IN OUT CACHE R W", "CONNECTED");
	for (int i = 0; i < catalog_count(K); i++) {
		const struct model_info *mi = catalog_at(K, i);
		char id[512], ctx[24], out[24], cap[64], cost[96];
		snprintf(id, sizeof(id), "%s/%s", mi->provider, mi->id);
		limit(mi->context, ctx, sizeof(ctx));
		limit(mi->output, out, sizeof(out));
		caps(mi, cap, sizeof(cap));
		snprintf(cost, sizeof(cost), "%g %g %g %g", mi->cost_input, mi->cost_output,
			 mi->cost_cache_read, mi->cost_cache_write);
		printf("%-*.*s  %-*.*s  %8s  %7s  %-26s  %-23s  %s%s\n", wid, wid, id, wname, wname,
		       mi->name, ctx, out, cap, cost, connected(C, mi->provider) ? "yes" : "no",
		       !strcmp(C->model, id) ? " (default)" : "");
	}
}

int cmd_models(const struct cli *c)
{
	struct config C = {0};
	struct err e = {0};
	struct catalog *K = NULL;
	int rc = 1;
	if (load(&C, c, &e) || !(K = catalog_load(&C, &e)))
		fprintf(stderr, "agentgate models: %s\n", e.msg);
	else if (c->json)
		rc = print_json(&C, K);
	else {
		print_table(&C, K);
		rc = 0;
	}
	catalog_free(K);
	config_free(&C);
	return rc;
}
