/* permrule: the permission rules, pure (no engine, no lws), so they are unit tested and
 * fuzzed alone. OpenCode's config shape: an object whose keys are permission names
 * (wildcards allowed: "*", "mcp_*") and whose values are an action ("allow", "ask",
 * "deny") or an object of pattern → action ({"git *": "allow", "rm *": "deny"}); a lone
 * action string stands for {"*": action}. The config is flattened, in its order, into a
 * list of rules; an ask is judged by the last rule whose permission and pattern both
 * match (so later rules, and rule lists given later, win). Not thread-safe; the engine
 * uses it on the loop thread. */
#ifndef AG_PERMRULE_H
#define AG_PERMRULE_H
#include <cjson/cJSON.h>
#include <stddef.h>

#include "err.h"

enum perm_action { PERM_ALLOW, PERM_ASK, PERM_DENY };

struct perm_rule {
	char *permission; /* a wildcard over permission names */
	char *pattern;    /* a wildcard over what is asked for (a command, a path) */
	enum perm_action action;
};

/* A list of rules and where it came from ("default", "config", "agent build"), which
 * messages name. */
struct perm_rules {
	struct perm_rule *v;
	int n, cap;
	char origin[64];
};

/* 1 if s matches the wildcard pattern: '*' any run of bytes ('/' included: "src/" then a
 * star covers a whole tree), '?' one byte, "[a-z]" / "[!a-z]" / "[^a-z]" a class, '\' makes
 * the next byte literal; everything else matches itself. As in OpenCode, a pattern
 * ending in " *" also matches without that tail: "git *" matches "git" and "git log".
 * Time is at most proportional to strlen(pattern) * strlen(s). */
int perm_match(const char *pattern, const char *s);

/* "allow" / "ask" / "deny" → *a: 0, or -1 for anything else (NULL included). */
int perm_action_parse(const char *s, enum perm_action *a);
const char *perm_action_name(enum perm_action a);

/* Appends a rule (strings copied): 0, or -1 out of memory. */
int perm_rules_add(struct perm_rules *R, const char *permission, const char *pattern,
		   enum perm_action a);
/* Appends the rules of a config section: an action string, or an object as above.
 * Patterns starting with "~/" or "$HOME/" (and "~", "$HOME") have home put in their
 * place when home is given. A key "timeout_ms" with a number is not a rule (the engine
 * reads it as permission.timeout_ms) and is skipped. where names the section in errors
 * ("config permission", "agent build: permission"). 0, or -1 with e naming the bad key
 * or value. NULL section: nothing to add. */
int perm_rules_parse(struct perm_rules *R, const cJSON *section, const char *home,
		     const char *where, struct err *e);
void perm_rules_free(struct perm_rules *R);

/* Which rule decided, for messages. */
struct perm_hit {
	const struct perm_rules *set; /* NULL when no rule matched */
	const struct perm_rule *rule;
};

/* The last rule of sets[0..n) (a later set after an earlier one) that matches
 * permission and subject. A rule for "edit" also covers the asks of OpenCode's other
 * editing tools ("write", "patch", "multiedit"). PERM_ASK, hit->set NULL, when none
 * matches. sets[i] may be NULL (skipped). */
enum perm_action perm_eval_one(const struct perm_rules *const *sets, int n,
			       const char *permission, const char *subject, struct perm_hit *hit);
/* An ask over all its subjects (a JSON array of strings; no array, an empty one, or a
 * non-string item counts as the subject "*"): PERM_DENY as soon as a subject is denied
 * (hit: that rule), else PERM_ASK when some subject asks (hit: the first such), else
 * PERM_ALLOW (hit: the last subject's rule). */
enum perm_action perm_eval(const struct perm_rules *const *sets, int n, const char *permission,
			   const cJSON *subjects, struct perm_hit *hit);
/* Writes the rule that decided: `"bash": {"rm *": "deny"} (config)`, or "no rule". */
void perm_hit_describe(const struct perm_hit *hit, char *buf, size_t n);

#endif
