/* An idle server sleeps: once it has nothing to do, none of its threads is woken —
 * no timer polling the loop, no checkpointer ticking, no sweeper — so an idle gateway
 * costs no CPU. Counted from the kernel's own figures: the third field of
 * /proc/PID/task/TID/schedstat is how many times the thread was run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "spawn.h"

/* How many times the threads of pid have been run, all together. */
static unsigned long long runs(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	assert_non_null(d);
	unsigned long long total = 0;
	for (struct dirent *e; (e = readdir(d));) {
		if (e->d_name[0] == '.')
			continue;
		char p[320];
		unsigned long long cpu, wait, n = 0;
		snprintf(p, sizeof(p), "/proc/%d/task/%s/schedstat", (int)pid, e->d_name);
		FILE *f = fopen(p, "r");
		if (f && fscanf(f, "%llu %llu %llu", &cpu, &wait, &n) == 3)
			total += n;
		if (f)
			fclose(f);
	}
	closedir(d);
	return total;
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* After a prompt (a turn, commits, a checkpoint), the server falls quiet: a window of
 * QUIET_MS with no thread run at all comes within the bound. Periodic wake-ups (a
 * 2 s sweeper, a 500 ms checkpointer, a timer polled early) never leave such a window. */
#define QUIET_MS 3000
static void an_idle_server_wakes_no_thread(void **state)
{
	char dir[] = "/tmp/agentgate-idle-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char data[96], log[96];
	snprintf(data, sizeof(data), "%s/data", dir);
	snprintf(log, sizeof(log), "%s/log", dir);
	int port = spawn_free_port();
	pid_t pid = spawn_serve(AGENTGATE_BIN, port, data, NULL, NULL, log, NULL);
	assert_true(pid > 0);
	char *body = NULL;
	assert_int_equal(spawn_http(port, "POST", "/session", NULL, "{}", &body), 200);
	char *id = strstr(body, "\"id\":\"");
	assert_non_null(id);
	char path[128];
	snprintf(path, sizeof(path), "/session/%.30s/message", id + 6);
	free(body);
	assert_int_equal(spawn_http(port, "POST", path, NULL,
				    "{\"parts\":[{\"type\":\"text\",\"text\":\"hello\"}]}", NULL), 200);
	int64_t deadline = mono_ms() + 20000, quiet_since = mono_ms();
	unsigned long long last = runs(pid);
	int quiet = 0;
	while (!quiet && mono_ms() < deadline) {
		usleep(100000); /* sampling the kernel's counters; nothing is waited on */
		unsigned long long now = runs(pid);
		if (now != last)
			quiet_since = mono_ms();
		last = now;
		quiet = mono_ms() - quiet_since >= QUIET_MS;
	}
	spawn_stop(pid, SIGTERM);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	assert_true(quiet);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(an_idle_server_wakes_no_thread),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
