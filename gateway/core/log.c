#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int level = LOG_INFO;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static void (*line_hook)(void *arg);
static void *line_hook_arg;

void log_lock(void)
{
	pthread_mutex_lock(&lock);
}

void log_unlock(void)
{
	pthread_mutex_unlock(&lock);
}

void log_set_line_hook(void (*fn)(void *arg), void *arg)
{
	pthread_mutex_lock(&lock);
	line_hook = fn;
	line_hook_arg = arg;
	pthread_mutex_unlock(&lock);
}

void log_set_level(enum log_level l)
{
	level = l;
}

void log_init_from_env(enum log_level dflt)
{
	static const char *names[] = {"error", "warn", "info", "debug"};
	const char *e = getenv("AGENTGATE_LOG");
	level = dflt;
	for (int i = 0; e && i < 4; i++)
		if (!strcmp(e, names[i]))
			level = i;
}

int log_enabled(enum log_level l)
{
	return (int)l <= level;
}

void log_msg(enum log_level l, const char *fmt, ...)
{
	static const char *tags[] = {"ERROR", "WARN", "INFO", "DEBUG"};
	if (!log_enabled(l))
		return;
	char line[2048];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			 tm.tm_sec, ts.tv_nsec / 1000000, tags[l]);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	line[len++] = '\n';
	pthread_mutex_lock(&lock);
	if (line_hook)
		line_hook(line_hook_arg);
	ssize_t w = write(2, line, len);
	pthread_mutex_unlock(&lock);
	(void)w;
}
