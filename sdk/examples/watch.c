/* watch: follows a session tree of a running gateway and prints it live, one line per
 * step, tool call and status change, indented by depth, with the reply text as it
 * streams. Built on libagentgate-client alone (and cJSON to read event properties):
 *
 *   watch URL [SESSION_ID] [--token TOKEN] [--since SEQ]
 *
 * Without SESSION_ID it follows every session. Reconnects by itself; Ctrl-C stops it. */
#include <agentgate/client.h>
#include <cjson/cJSON.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : "";
}

static int mid_line; /* a reply's text is being printed */

static void newline(void)
{
	if (mid_line)
		putchar('\n');
	mid_line = 0;
}

/* Service thread: one event. */
static void on_event(void *user, const struct ag_client_event *ev)
{
	cJSON *j = cJSON_ParseWithLength(ev->json, ev->len);
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "properties");
	int indent = ev->depth * 2;
	const char *sid = ev->session_id ? ev->session_id : "";
	if (!strcmp(ev->type, "message.part.delta")) {
		if (!mid_line)
			printf("%*s%s | ", indent, "", sid);
		fputs(str(p, "delta"), stdout);
		mid_line = 1;
	} else if (!strcmp(ev->type, "message.part.updated")) {
		const cJSON *part = cJSON_GetObjectItemCaseSensitive(p, "part");
		const char *type = str(part, "type");
		const cJSON *state = cJSON_GetObjectItemCaseSensitive(part, "state");
		if (!strcmp(type, "tool")) {
			newline();
			printf("%*s%s tool %s: %s\n", indent, "", sid, str(part, "tool"), str(state, "status"));
		} else if (!strcmp(type, "step-start") || !strcmp(type, "step-finish")) {
			newline();
			printf("%*s%s %s\n", indent, "", sid, type);
		}
	} else if (!strcmp(ev->type, "session.created")) {
		newline();
		printf("%*s%s created%s%s\n", indent, "", sid, ev->parent_id ? " under " : "",
		       ev->parent_id ? ev->parent_id : "");
	} else if (!strcmp(ev->type, "session.status")) {
		newline();
		printf("%*s%s %s\n", indent, "", sid,
		       str(cJSON_GetObjectItemCaseSensitive(p, "status"), "type"));
	} else if (!strcmp(ev->type, "session.error")) {
		newline();
		const cJSON *err = cJSON_GetObjectItemCaseSensitive(p, "error");
		printf("%*s%s error: %s\n", indent, "", sid,
		       str(cJSON_GetObjectItemCaseSensitive(err, "data"), "message"));
	} else if (!strcmp(ev->type, "resync")) {
		newline();
		printf("-- resync: events after %lld are gone; reload the session (now at %lld)\n",
		       (long long)cJSON_GetObjectItemCaseSensitive(p, "since")->valuedouble,
		       (long long)ev->seq);
	}
	fflush(stdout);
	cJSON_Delete(j);
}

static void on_state(void *user, enum ag_client_state st, const char *why)
{
	if (st == AG_CLIENT_DISCONNECTED || st == AG_CLIENT_FAILED)
		fprintf(stderr, "watch: %s%s\n", st == AG_CLIENT_FAILED ? "" : "reconnecting: ", why);
	if (st == AG_CLIENT_FAILED)
		kill(getpid(), SIGTERM);
}

static void on_subscribed(void *user, const struct ag_client_result *r)
{
	const char *session = user;
	if (r->code) {
		fprintf(stderr, "watch: subscribe: %s\n", r->message);
		kill(getpid(), SIGTERM);
		return;
	}
	fprintf(stderr, "watch: following %s (Ctrl-C stops)\n", session ? session : "every session");
}

int main(int argc, char **argv)
{
	const char *url = NULL, *session = NULL, *token = getenv("AGENTGATE_TOKEN");
	long long since = -1;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--token") && i + 1 < argc)
			token = argv[++i];
		else if (!strcmp(argv[i], "--since") && i + 1 < argc)
			since = atoll(argv[++i]);
		else if (!url)
			url = argv[i];
		else if (!session)
			session = argv[i];
	}
	if (!url) {
		fprintf(stderr, "usage: watch URL [SESSION_ID] [--token TOKEN] [--since SEQ]\n");
		return 2;
	}
	/* signals wait for sigwait here, not in the client's thread */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	char err[256];
	struct ag_client_opts o = {.size = sizeof(o), .url = url, .token = token, .on_state = on_state};
	struct ag_client *c = ag_client_open(&o, err, sizeof(err));
	if (!c) {
		fprintf(stderr, "watch: %s\n", err);
		return 2;
	}
	struct ag_client_subscription s = {
		.size = sizeof(s), .session_id = session, .descendants = 1, .since = since,
		.on_event = on_event,
	};
	ag_client_subscribe(c, &s, on_subscribed, (void *)session);
	int sig;
	sigwait(&set, &sig);
	long long last = (long long)ag_client_last_seq(c);
	ag_client_close(c);
	newline();
	fprintf(stderr, "watch: stopped at seq %lld (resume with --since %lld)\n", last, last);
	return 0;
}
