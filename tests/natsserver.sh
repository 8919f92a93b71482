#!/bin/sh
# A NATS server with JetStream for the tests, in the foreground: tests/natsserver.sh DIR PORT.
# Listens on 127.0.0.1:PORT only, keeps JetStream's files in DIR/js (so a restart on the
# same DIR finds its streams again) and its log in DIR/server.log, then becomes the server
# (exec: the caller's child is nats-server; SIGINT or SIGTERM stops it, SIGKILL kills it).
# It gets SIGTERM when its parent dies, so a test that crashes leaves no server behind
# (unless AGENTGATE_DETACHED is set: contrib/cluster.sh keeps it running on its own).
# nats-server needs no privileges: it runs as whoever calls this. The binary:
# $AGENTGATE_NATS_SERVER, else nats-server on the PATH (Debian's nats-server package,
# contrib/deps.sh --test). Exit 77 when there is none.
set -eu
dir=$1
port=$2
bin=${AGENTGATE_NATS_SERVER:-$(command -v nats-server || true)}
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
	echo "natsserver.sh: no nats-server (install Debian's nats-server: contrib/deps.sh --test)" >&2
	exit 77
fi
mkdir -p "$dir/js"
death="--pdeathsig TERM"
[ -n "${AGENTGATE_DETACHED:-}" ] && death=""
# shellcheck disable=SC2086
exec setpriv $death -- "$bin" -js -sd "$dir/js" -a 127.0.0.1 -p "$port" \
	-l "$dir/server.log"
