/* permrule: wildcard matching, the config's rules flattened, and their evaluation
 * (permrule.h). */
#include "permrule.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- wildcards ---- */

/* Does the class at p[0] == '[' (pattern bytes up to end) take c? *len gets its length;
 * -1 when there is no closing ']' (the '[' is then a literal). */
static int class_match(const char *p, const char *end, unsigned char c, size_t *len)
{
	const char *q = p + 1;
	int neg = q < end && (*q == '!' || *q == '^');
	q += neg;
	int hit = 0;
	const char *first = q;
	while (q < end && (*q != ']' || q == first)) {
		unsigned char lo = (unsigned char)*q, hi = lo;
		if (q + 2 < end && q[1] == '-' && q[2] != ']') {
			hi = (unsigned char)q[2];
			q += 2;
		}
		hit |= c >= lo && c <= hi;
		q++;
	}
	if (q >= end)
		return -1;
	*len = (size_t)(q + 1 - p);
	return hit != neg;
}

/* Does the one pattern element at p (not '*') take c? *len gets its length. */
static int one(const char *p, const char *end, unsigned char c, size_t *len)
{
	*len = 1;
	if (*p == '?')
		return 1;
	if (*p == '[') {
		int m = class_match(p, end, c, len);
		if (m >= 0)
			return m;
		*len = 1;
	} else if (*p == '\\' && p + 1 < end) {
		*len = 2;
		return (unsigned char)p[1] == c;
	}
	return (unsigned char)*p == c;
}

/* The classic one-star backtracking match: on a mismatch, the last '*' takes one more
 * byte. Enough for '*' with fixed-width elements, and O(pattern × subject). */
static int glob(const char *p, size_t pn, const char *s)
{
	const char *end = p + pn, *pi = p, *star = NULL, *star_s = NULL;
	while (*s) {
		size_t len;
		if (pi < end && *pi == '*') {
			star = ++pi;
			star_s = s;
		} else if (pi < end && one(pi, end, (unsigned char)*s, &len)) {
			pi += len;
			s++;
		} else if (star) {
			pi = star;
			s = ++star_s;
		} else {
			return 0;
		}
	}
	while (pi < end && *pi == '*')
		pi++;
	return pi == end;
}

int perm_match(const char *pattern, const char *s)
{
	if (!pattern || !s)
		return 0;
	size_t n = strlen(pattern);
	if (glob(pattern, n, s))
		return 1;
	/* "ls *" also matches "ls": the arguments are optional */
	return n >= 2 && !strcmp(pattern + n - 2, " *") && glob(pattern, n - 2, s);
}

/* ---- actions and rule lists ---- */

static const char *const action_names[] = {"allow", "ask", "deny"};

int perm_action_parse(const char *s, enum perm_action *a)
{
	for (int i = 0; s && i < 3; i++)
		if (!strcmp(s, action_names[i])) {
			*a = (enum perm_action)i;
			return 0;
		}
	return -1;
}

const char *perm_action_name(enum perm_action a)
{
	return a <= PERM_DENY ? action_names[a] : "?";
}

int perm_rules_add(struct perm_rules *R, const char *permission, const char *pattern,
		   enum perm_action a)
{
	if (R->n == R->cap) {
		int cap = R->cap ? R->cap * 2 : 8;
		struct perm_rule *v = realloc(R->v, (size_t)cap * sizeof(*v));
		if (!v)
			return -1;
		R->v = v;
		R->cap = cap;
	}
	struct perm_rule *r = &R->v[R->n];
	r->permission = strdup(permission);
	r->pattern = strdup(pattern);
	r->action = a;
	if (!r->permission || !r->pattern) {
		free(r->permission);
		free(r->pattern);
		return -1;
	}
	R->n++;
	return 0;
}

void perm_rules_free(struct perm_rules *R)
{
	for (int i = 0; i < R->n; i++) {
		free(R->v[i].permission);
		free(R->v[i].pattern);
	}
	free(R->v);
	R->v = NULL;
	R->n = R->cap = 0;
}

/* pattern with "~" or "$HOME" at its start replaced by home (malloc'd), or a copy. */
static char *expand(const char *pattern, const char *home)
{
	static const char *const heads[] = {"~", "$HOME"};
	for (int i = 0; home && i < 2; i++) {
		size_t n = strlen(heads[i]);
		if (strncmp(pattern, heads[i], n) || (pattern[n] && pattern[n] != '/'))
			continue;
		char *out = malloc(strlen(home) + strlen(pattern + n) + 1);
		if (out)
			strcat(strcpy(out, home), pattern + n);
		return out;
	}
	return strdup(pattern);
}

static int add_expanded(struct perm_rules *R, const char *permission, const char *pattern,
			enum perm_action a, const char *home, struct err *e)
{
	char *p = expand(pattern, home);
	int rc = p ? perm_rules_add(R, permission, p, a) : -1;
	free(p);
	if (rc)
		err_set(e, ERR_INTERNAL, "out of memory");
	return rc;
}

static int bad_action(const char *where, const char *key, const char *pattern, struct err *e)
{
	if (pattern)
		err_set(e, ERR_INVALID, "%s: \"%.100s\": {\"%.100s\": ...} must be \"allow\", \"ask\" "
			"or \"deny\"", where, key, pattern);
	else
		err_set(e, ERR_INVALID, "%s: \"%.100s\" must be \"allow\", \"ask\" or \"deny\", or an "
			"object of pattern → action", where, key);
	return -1;
}

/* One key of the section: an action, or an object of pattern → action. */
static int parse_key(struct perm_rules *R, const cJSON *v, const char *home, const char *where,
		     struct err *e)
{
	enum perm_action a;
	if (cJSON_IsString(v)) {
		if (perm_action_parse(v->valuestring, &a))
			return bad_action(where, v->string, NULL, e);
		return add_expanded(R, v->string, "*", a, NULL, e);
	}
	if (!cJSON_IsObject(v))
		return bad_action(where, v->string, NULL, e);
	const cJSON *it;
	cJSON_ArrayForEach(it, v) {
		if (!cJSON_IsString(it) || perm_action_parse(it->valuestring, &a))
			return bad_action(where, v->string, it->string, e);
		if (add_expanded(R, v->string, it->string, a, home, e))
			return -1;
	}
	return 0;
}

int perm_rules_parse(struct perm_rules *R, const cJSON *section, const char *home,
		     const char *where, struct err *e)
{
	enum perm_action a;
	if (!section)
		return 0;
	if (cJSON_IsString(section)) {
		if (perm_action_parse(section->valuestring, &a)) {
			err_set(e, ERR_INVALID, "%s must be \"allow\", \"ask\" or \"deny\", or an object "
				"of permission → action", where);
			return -1;
		}
		return add_expanded(R, "*", "*", a, NULL, e);
	}
	if (!cJSON_IsObject(section)) {
		err_set(e, ERR_INVALID, "%s must be an object of permission → action (or one "
			"action for all)", where);
		return -1;
	}
	const cJSON *v;
	cJSON_ArrayForEach(v, section) {
		if (!strcmp(v->string, "timeout_ms") && cJSON_IsNumber(v))
			continue;
		if (parse_key(R, v, home, where, e))
			return -1;
	}
	return 0;
}

/* ---- evaluation ---- */

/* OpenCode's editing tools all ask as "edit"; a rule for "edit" covers them. */
static int permission_matches(const char *rule, const char *permission)
{
	static const char *const edits[] = {"write", "patch", "multiedit"};
	if (perm_match(rule, permission))
		return 1;
	for (int i = 0; i < 3 && !strcmp(rule, "edit"); i++)
		if (!strcmp(permission, edits[i]))
			return 1;
	return 0;
}

enum perm_action perm_eval_one(const struct perm_rules *const *sets, int n,
			       const char *permission, const char *subject, struct perm_hit *hit)
{
	*hit = (struct perm_hit){0};
	for (int s = n - 1; s >= 0; s--) {
		for (int i = sets[s] ? sets[s]->n - 1 : -1; i >= 0; i--) {
			const struct perm_rule *r = &sets[s]->v[i];
			if (permission_matches(r->permission, permission) &&
			    perm_match(r->pattern, subject)) {
				*hit = (struct perm_hit){sets[s], r};
				return r->action;
			}
		}
	}
	return PERM_ASK;
}

enum perm_action perm_eval(const struct perm_rules *const *sets, int n, const char *permission,
			   const cJSON *subjects, struct perm_hit *hit)
{
	enum perm_action worst = PERM_ALLOW;
	struct perm_hit h, asked = {0};
	int count = cJSON_IsArray(subjects) ? cJSON_GetArraySize(subjects) : 0;
	*hit = (struct perm_hit){0};
	for (int i = 0; i < (count ? count : 1); i++) {
		const cJSON *it = count ? cJSON_GetArrayItem(subjects, i) : NULL;
		const char *subject = cJSON_IsString(it) ? it->valuestring : "*";
		enum perm_action a = perm_eval_one(sets, n, permission, subject, &h);
		if (a == PERM_DENY) {
			*hit = h;
			return PERM_DENY;
		}
		if (a == PERM_ASK && worst == PERM_ALLOW) {
			worst = PERM_ASK;
			asked = h;
		}
		*hit = h;
	}
	if (worst == PERM_ASK)
		*hit = asked;
	return worst;
}

void perm_hit_describe(const struct perm_hit *hit, char *buf, size_t n)
{
	if (!hit->rule) {
		snprintf(buf, n, "no rule");
		return;
	}
	const struct perm_rule *r = hit->rule;
	snprintf(buf, n, "\"%.100s\": {\"%.200s\": \"%s\"} (%s)", r->permission, r->pattern,
		 perm_action_name(r->action), hit->set->origin[0] ? hit->set->origin : "rules");
}
