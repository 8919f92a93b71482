#include "catalog_json.h"

static void num(struct jw *w, const char *k, double v)
{
	jw_key(w, k);
	jw_double(w, v);
}

static void modalities(struct jw *w, const struct model_info *mi)
{
	static const char *const names[] = {"audio", "image", "video", "pdf"};
	const int on[] = {mi->input_audio, mi->input_image, mi->input_video, mi->input_pdf};
	jw_key(w, "modalities");
	jw_obj(w);
	jw_key(w, "input");
	jw_arr(w);
	jw_str(w, "text");
	for (int i = 0; i < 4; i++)
		if (on[i])
			jw_str(w, names[i]);
	jw_arr_end(w);
	jw_key(w, "output");
	jw_arr(w);
	jw_str(w, "text");
	jw_arr_end(w);
	jw_obj_end(w);
}

void catalog_write_flags(struct jw *w, const struct model_info *mi)
{
	jw_kbool(w, "attachment", mi->attachment);
	jw_kbool(w, "reasoning", mi->reasoning);
	jw_kbool(w, "temperature", mi->temperature);
	jw_kbool(w, "tool_call", mi->tool_call);
	modalities(w, mi);
}

void catalog_write_modelsdev(struct jw *w, const struct model_info *mi)
{
	jw_kstr(w, "name", mi->name);
	if (*mi->release_date)
		jw_kstr(w, "release_date", mi->release_date);
	catalog_write_flags(w, mi);
	jw_key(w, "cost");
	jw_obj(w);
	num(w, "input", mi->cost_input);
	num(w, "output", mi->cost_output);
	num(w, "cache_read", mi->cost_cache_read);
	num(w, "cache_write", mi->cost_cache_write);
	jw_obj_end(w);
	jw_key(w, "limit");
	jw_obj(w);
	jw_kint(w, "context", mi->context);
	jw_kint(w, "output", mi->output);
	jw_obj_end(w);
}
