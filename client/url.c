/* url: the gateway's address as the client library is given it (client_int.h). */
#include "client_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t n, const char *url, const char *why)
{
	if (err && n)
		snprintf(err, n, "url \"%.200s\": %s", url ? url : "(null)", why);
	return -1;
}

int agc_url_parse(const char *url, struct agc_url *u, char *err, size_t errlen)
{
	static const struct {
		const char *scheme;
		int tls, port;
	} schemes[] = {{"ws://", 0, 80}, {"http://", 0, 80}, {"wss://", 1, 443}, {"https://", 1, 443}};
	memset(u, 0, sizeof(*u));
	if (!url || !*url)
		return fail(err, errlen, url, "empty (expected ws://HOST:PORT or http://HOST:PORT)");
	const char *p = NULL;
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
		if (!strncmp(url, schemes[i].scheme, strlen(schemes[i].scheme))) {
			p = url + strlen(schemes[i].scheme);
			u->tls = schemes[i].tls;
			u->port = schemes[i].port;
		}
	if (!p)
		return fail(err, errlen, url, "the scheme must be ws://, wss://, http:// or https://");
	const char *host_end, *h = p;
	if (*p == '[') { /* an IPv6 literal */
		host_end = strchr(p, ']');
		if (!host_end)
			return fail(err, errlen, url, "an IPv6 address without its closing ]");
		h = p + 1;
		p = host_end + 1;
	} else {
		host_end = p + strcspn(p, ":/?#");
		p = host_end;
	}
	size_t hl = (size_t)(host_end - h);
	if (!hl || hl >= sizeof(u->host))
		return fail(err, errlen, url, hl ? "the host name is too long" : "no host");
	memcpy(u->host, h, hl);
	int explicit_port = 0;
	if (*p == ':') {
		char *end;
		long port = strtol(p + 1, &end, 10);
		if (end == p + 1 || port < 1 || port > 65535 || (*end && !strchr("/?#", *end)))
			return fail(err, errlen, url, "the port must be a number from 1 to 65535");
		u->port = (int)port;
		explicit_port = 1;
		p = end;
	} else if (*p && !strchr("/?#", *p)) {
		return fail(err, errlen, url, "unexpected characters after the host");
	}
	size_t pl = strcspn(p, "?#");
	while (pl && p[pl - 1] == '/')
		pl--;
	int has_ws = pl >= 3 && !strncmp(p + pl - 3, "/ws", 3);
	if (pl + 4 >= sizeof(u->path))
		return fail(err, errlen, url, "the path is too long");
	snprintf(u->path, sizeof(u->path), "%.*s%s", (int)pl, p, has_ws ? "" : "/ws");
	int v6 = strchr(u->host, ':') != NULL;
	if (explicit_port)
		snprintf(u->host_header, sizeof(u->host_header), "%s%s%s:%d", v6 ? "[" : "", u->host,
			 v6 ? "]" : "", u->port);
	else
		snprintf(u->host_header, sizeof(u->host_header), "%s%s%s", v6 ? "[" : "", u->host,
			 v6 ? "]" : "");
	return 0;
}
