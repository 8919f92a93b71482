/* audit-log: every event the gateway publishes, one JSON object per line (the event as
 * clients receive it), appended to the file named by option "file". Before a line would
 * take the file past "max_bytes" the file is rotated: FILE.N-1 becomes FILE.N and so on,
 * FILE becomes FILE.1, and only "keep" old files stay (0: the file starts over). When
 * the host dropped events this observer fell behind on, a marker line says how many and
 * where: {"type":"audit.gap","dropped":N,"beforeSeq":SEQ,"time":MS}.
 * The file is opened on the loop in on_load (so a bad path fails the load) and written
 * only from the observer thread; the host stops that thread before on_unload. */
#define _POSIX_C_SOURCE 200809L
#include "plug.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

static const char *const known_options[] = {"file", "max_bytes", "keep", NULL};

static struct audit {
	const struct ag_host *host;
	ag_plugin *self;
	char *path;
	long long max_bytes, keep;
	int fd;
	long long size;     /* of the open file */
	int failing;        /* the last write failed: logged once until one succeeds */
} A = {.fd = -1};

static int audit_open(int truncate, struct ag_error *err)
{
	struct stat st;
	int flags = O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | (truncate ? O_TRUNC : 0);
	A.fd = open(A.path, flags, 0640);
	if (A.fd < 0 || fstat(A.fd, &st))
		return plug_fail(err, AG_E_INVALID, "option \"file\": cannot open %s: %s", A.path,
				 strerror(errno));
	A.size = st.st_size;
	return AG_OK;
}

/* FILE.i is FILE.i+1 now, for i from keep-1 down to 1, then FILE is FILE.1. */
static int rotate(void)
{
	size_t n = strlen(A.path) + 24;
	char from[n], to[n];
	close(A.fd);
	A.fd = -1;
	for (long long i = A.keep - 1; i >= 1; i--) {
		snprintf(from, n, "%s.%lld", A.path, i);
		snprintf(to, n, "%s.%lld", A.path, i + 1);
		if (rename(from, to) && errno != ENOENT)
			return -1;
	}
	snprintf(to, n, "%s.1", A.path);
	if (A.keep > 0 && rename(A.path, to))
		return -1;
	return audit_open(A.keep == 0, NULL) ? -1 : 0;
}

static void failed(const char *what)
{
	if (!A.failing)
		A.host->log(A.self, AG_LOG_ERROR, "%s %s: %s (events are lost until it works "
			    "again)", what, A.path, strerror(errno));
	A.failing = 1;
}

static void write_line(const char *json, size_t len)
{
	struct iovec iov[2] = {{(void *)json, len}, {"\n", 1}};
	long long need = (long long)len + 1;
	if ((A.fd < 0 || (A.size > 0 && A.size + need > A.max_bytes)) && rotate()) {
		failed("cannot rotate");
		return;
	}
	ssize_t w = writev(A.fd, iov, 2);
	if (w > 0)
		A.size += w;
	if (w != need) {
		failed("cannot write");
		return;
	}
	A.failing = 0;
}

static int on_event(void *user, const struct ag_ctx *ctx, void *data)
{
	const struct ag_event *ev = data;
	if (ev->dropped) {
		char gap[160];
		int n = snprintf(gap, sizeof(gap), "{\"type\":\"audit.gap\",\"dropped\":%" PRIu64
				 ",\"beforeSeq\":%" PRId64 ",\"time\":%" PRId64 "}", ev->dropped,
				 ev->seq, ev->time);
		write_line(gap, (size_t)n);
	}
	write_line(ev->json, ev->json_len);
	return AG_HOOK_CONTINUE;
}

static void audit_free(void)
{
	if (A.fd >= 0)
		close(A.fd);
	free(A.path);
	memset(&A, 0, sizeof(A));
	A.fd = -1;
}

static int audit_load(ag_plugin *self, const struct ag_host *host, const char *options,
		      struct ag_error *err)
{
	cJSON *o = NULL;
	const char *file = NULL;
	audit_free();
	A.host = host;
	A.self = self;
	int rc = plug_options(options, known_options, &o, err);
	if (!rc)
		rc = plug_opt_str(o, "file", NULL, &file, err);
	if (!rc && !file)
		rc = plug_fail(err, AG_E_INVALID, "option \"file\" is required: the file to "
			       "write events to");
	if (!rc)
		rc = plug_opt_int(o, "max_bytes", 64LL << 20, 1, 1LL << 50, &A.max_bytes, err);
	if (!rc)
		rc = plug_opt_int(o, "keep", 5, 0, 1000, &A.keep, err);
	if (!rc && !(A.path = strdup(file)))
		rc = plug_fail(err, AG_E_INTERNAL, "out of memory");
	if (!rc)
		rc = audit_open(0, err);
	if (!rc && (rc = host->hook(self, AG_HOOK_EVENT, on_event, NULL)))
		plug_fail(err, rc, "cannot register the event hook");
	cJSON_Delete(o);
	if (rc)
		audit_free();
	return rc;
}

static void audit_unload(ag_plugin *self)
{
	audit_free();
}

static const struct ag_plugin_info info = {
	.magic = AG_PLUGIN_MAGIC,
	.abi_major = AG_ABI_MAJOR,
	.abi_minor = AG_ABI_MINOR,
	.size = sizeof(struct ag_plugin_info),
	.id = "audit-log",
	.version = "1.0.0",
	.description = "every event as NDJSON to a file, rotated by size",
	.on_load = audit_load,
	.on_unload = audit_unload,
};

AG_EXPORT const struct ag_plugin_info *AG_PLUGIN_ENTRY(void)
{
	return &info;
}
