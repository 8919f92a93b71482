/* log: one line per record on stderr: time, level, message. Callers put the session id
 * in the line where one applies. Any thread (each record is one write(2), under a lock
 * shared with a writer that ends its line first: log_set_line_hook). */
#ifndef AG_LOG_H
#define AG_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

void log_set_level(enum log_level l);
/* Reads AGENTGATE_LOG (error|warn|info|debug); keeps dflt when unset or unknown. */
void log_init_from_env(enum log_level dflt);
int log_enabled(enum log_level l);
void log_msg(enum log_level l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A writer that shares the screen or pipe with the log (agentgate run's reply on stdout
 * when stderr goes to the same place) registers fn: before each record, under the log's
 * lock, fn ends the writer's current line. The writer holds the same lock (log_lock /
 * log_unlock) while it writes, so no record lands in the middle of its line. NULL fn
 * removes it. fn must not log. Any thread. */
void log_set_line_hook(void (*fn)(void *arg), void *arg);
void log_lock(void);
void log_unlock(void);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) do { if (log_enabled(LOG_DEBUG)) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
