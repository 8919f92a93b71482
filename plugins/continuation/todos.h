/* todos: a session's todo list as todowrite takes it and the wake prompt tells it.
 * Pure (cJSON only, no host), so its rules are tested on their own. A list is a cJSON
 * array of {content, status, priority, id}, the shape of OpenCode's todowrite. */
#ifndef AG_TODOS_H
#define AG_TODOS_H

#include <cjson/cJSON.h>
#include <stddef.h>

/* The list in a todowrite input ({"todos": [...]}), normalized: each item has exactly
 * the four fields, status and priority checked, a missing id numbered from 1. NULL
 * when the input is wrong, with why (naming the item and field) in why. The caller
 * deletes the result. */
cJSON *todos_parse(const char *input_json, char *why, size_t why_len);

/* How many todos are neither completed nor cancelled. */
int todos_open(const cJSON *todos);

/* The prompt that wakes a session with open todos: which remain, and which wake of how
 * many this is. malloc'd; NULL when out of memory. */
char *todos_wake_text(const cJSON *todos, int wake, int max_wakes);

#endif
