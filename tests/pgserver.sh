#!/bin/sh
# A PostgreSQL server for the tests, in the foreground: tests/pgserver.sh DIR PORT.
# Creates a cluster in DIR/data on first use (initdb: superuser "agentgate", trust
# authentication, nothing listening beyond 127.0.0.1 and a socket in DIR), then becomes
# the server (exec: the caller's child is the postmaster; SIGINT stops it at once,
# cleanly). The server's log is DIR/server.log. PostgreSQL refuses to run as root: run
# by root (a CI container), the cluster belongs to the `postgres` user the Debian package
# creates (else `nobody`) and the server runs as it, through setpriv. The server gets
# SIGINT (a fast shutdown) when its parent dies, so a test that crashes leaves no server behind
# (unless AGENTGATE_DETACHED is set: contrib/cluster.sh keeps it running on its own).
# The binaries: $AGENTGATE_PG_BIN, else the newest /usr/lib/postgresql/*/bin (Debian's
# postgresql package). Exit 77 when there are none.
set -eu
dir=$1
port=$2
bin=${AGENTGATE_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
if [ -z "$bin" ] || [ ! -x "$bin/postgres" ]; then
	echo "pgserver.sh: no PostgreSQL server (install Debian's postgresql: contrib/deps.sh --test)" >&2
	exit 77
fi
as=""
if [ "$(id -u)" = 0 ]; then
	user=postgres
	getent passwd postgres >/dev/null || user=nobody
	chown -R "$user" "$dir"
	as="--reuid=$user --regid=$(id -g "$user") --clear-groups"
fi
if [ ! -f "$dir/data/PG_VERSION" ]; then
	# shellcheck disable=SC2086 # $as is a list of options
	if ! setpriv $as -- "$bin/initdb" -D "$dir/data" -U agentgate --auth=trust --no-sync \
		-E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1; then
		cat "$dir/initdb.log" >&2
		exit 1
	fi
fi
# durability settings do not matter here (the tests kill gateways, never the machine)
death="--pdeathsig INT"
[ -n "${AGENTGATE_DETACHED:-}" ] && death=""
# shellcheck disable=SC2086
exec setpriv $as $death -- "$bin/postgres" -D "$dir/data" -p "$port" -k "$dir" \
	-c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off \
	-c max_connections=50 -c shared_buffers=16MB >>"$dir/server.log" 2>&1
