#include "mock.h"
#include "jw.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

char mock_openai_base[64], mock_anthropic_base[64];
static char stats_url[64];
static pid_t mock_pid;
static int mock_stdin = -1;

int mock_start(void **state)
{
	int in[2], out[2];
	assert_int_equal(pipe(in), 0);
	assert_int_equal(pipe(out), 0);
	mock_pid = fork();
	if (mock_pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[1]);
		close(out[0]);
		execl(MOCKLLM_BIN, MOCKLLM_BIN, "--exit-on-stdin-eof", (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	mock_stdin = in[1]; /* the mock exits when this closes, also if the test dies */
	char line[64] = "";
	FILE *f = fdopen(out[0], "r");
	assert_non_null(fgets(line, sizeof(line), f));
	int port = 0;
	assert_int_equal(sscanf(line, "PORT %d", &port), 1);
	fclose(f);
	snprintf(mock_openai_base, sizeof(mock_openai_base), "http://127.0.0.1:%d/v1", port);
	snprintf(mock_anthropic_base, sizeof(mock_anthropic_base), "http://127.0.0.1:%d", port);
	snprintf(stats_url, sizeof(stats_url), "http://127.0.0.1:%d/_stats", port);
	setenv("OPENAI_API_KEY", "sk-test-secret-0001", 1);
	setenv("ANTHROPIC_API_KEY", "ak-test-secret-0002", 1);
	return 0;
}

int mock_stop(void **state)
{
	close(mock_stdin);
	kill(mock_pid, SIGTERM);
	waitpid(mock_pid, NULL, 0);
	return 0;
}

static size_t sink(char *p, size_t s, size_t n, void *arg)
{
	jw_append(arg, p, s * n);
	return s * n;
}

cJSON *mock_stats(void)
{
	struct jw w;
	jw_init(&w);
	CURL *c = curl_easy_init();
	curl_easy_setopt(c, CURLOPT_URL, stats_url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &w);
	assert_int_equal(curl_easy_perform(c), CURLE_OK);
	curl_easy_cleanup(c);
	cJSON *j = cJSON_ParseWithLength(w.buf, w.len);
	jw_free(&w);
	assert_non_null(j);
	return j;
}

cJSON *mock_last_request(const char *model)
{
	cJSON *j = mock_stats();
	cJSON *last = cJSON_DetachItemFromObject(cJSON_GetObjectItem(j, "last_by_model"), model);
	cJSON_Delete(j);
	return last;
}
