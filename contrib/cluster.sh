#!/usr/bin/env bash
# A cluster of agentgate nodes on this machine, to try several nodes (docs/ARCHITECTURE.md,
# "Several nodes"): a PostgreSQL server and a NATS server with JetStream (Debian's
# postgresql and nats-server: contrib/deps.sh --test installs them), each in a directory
# of its own, and N gateway nodes sharing them, all on 127.0.0.1.
#   contrib/cluster.sh up [N]     starts N nodes (3) on ports 4101.., prints their URLs
#   contrib/cluster.sh status     each node's /global/health
#   contrib/cluster.sh kill I     kill -9 node I (its sessions move to the others)
#   contrib/cluster.sh start I    starts node I again
#   contrib/cluster.sh down       stops everything (the nodes drain first) and removes it
# Everything lives in $AGENTGATE_CLUSTER_DIR (/tmp/agentgate-cluster); the nodes' logs are
# nI.log there. The binary: $AGENTGATE_BIN, else build/agentgate (contrib/start.sh builds it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${AGENTGATE_CLUSTER_DIR:-/tmp/agentgate-cluster}
bin=${AGENTGATE_BIN:-$root/build/agentgate}
pg_port=${AGENTGATE_CLUSTER_PG_PORT:-4132}
nats_port=${AGENTGATE_CLUSTER_NATS_PORT:-4122}
store="postgres://agentgate@127.0.0.1:$pg_port/agentgate"
export AGENTGATE_DETACHED=1 # the servers outlive this script

die() { echo "cluster.sh: $*" >&2; exit 1; }

# waits up to 15 s for a command to succeed
wait_for() {
	local what=$1
	shift
	for _ in $(seq 1 150); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	die "$what did not come up (see $dir)"
}

pg_up() { psql -h 127.0.0.1 -p "$pg_port" -U agentgate -d postgres -Atc 'select 1'; }

start_servers() {
	[ -x "$bin" ] || die "no $bin: build first (contrib/start.sh or cmake --build build)"
	mkdir -p "$dir/pg" "$dir/nats"
	if ! pg_up >/dev/null 2>&1; then
		setsid sh "$root/tests/pgserver.sh" "$dir/pg" "$pg_port" </dev/null >"$dir/pg.out" 2>&1 &
		wait_for PostgreSQL pg_up
	fi
	psql -h 127.0.0.1 -p "$pg_port" -U agentgate -d postgres -Atc \
		"select 1 from pg_database where datname = 'agentgate'" | grep -q 1 ||
		psql -h 127.0.0.1 -p "$pg_port" -U agentgate -d postgres -qc 'create database agentgate'
	if ! (exec 3<>"/dev/tcp/127.0.0.1/$nats_port") 2>/dev/null; then
		setsid sh "$root/tests/natsserver.sh" "$dir/nats" "$nats_port" </dev/null \
			>"$dir/nats.out" 2>&1 &
		wait_for NATS bash -c "exec 3<>/dev/tcp/127.0.0.1/$nats_port"
	fi
}

healthy() { curl -sf "http://127.0.0.1:$1/global/health"; }

start_node() {
	local i=$1 port=$((4100 + $1))
	mkdir -p "$dir/n$i"
	setsid "$bin" serve --port "$port" --data "$dir/n$i" --store "$store" \
		--bus "nats://127.0.0.1:$nats_port" --node "n$i" </dev/null >>"$dir/n$i.log" 2>&1 &
	echo $! >"$dir/n$i.pid"
	wait_for "node n$i" healthy "$port"
	echo "node n$i: http://127.0.0.1:$port"
}

node_pid() { [ -f "$dir/n$1.pid" ] && cat "$dir/n$1.pid"; }

case "${1:-}" in
up)
	n=${2:-3}
	start_servers
	for i in $(seq 1 "$n"); do start_node "$i"; done
	echo "store $store, bus nats://127.0.0.1:$nats_port, logs in $dir"
	;;
start)
	[ -n "${2:-}" ] || die "usage: cluster.sh start I"
	start_servers
	start_node "$2"
	;;
kill)
	pid=$(node_pid "${2:-0}") || die "no node ${2:-}"
	kill -9 "$pid" && rm -f "$dir/n$2.pid" && echo "node n$2 killed (pid $pid)"
	;;
status)
	for f in "$dir"/n*.pid; do
		[ -e "$f" ] || continue
		i=$(basename "$f" .pid)
		i=${i#n}
		echo "n$i: $(healthy $((4100 + i)) || echo down)"
	done
	;;
down)
	for f in "$dir"/n*.pid; do
		[ -e "$f" ] || continue
		pid=$(cat "$f")
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 1 350); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null || true
		rm -f "$f"
	done
	pkill -f "nats-server -js -sd $dir/nats" 2>/dev/null || true
	pkill -INT -f "postgres -D $dir/pg/data" 2>/dev/null || true
	for _ in $(seq 1 100); do pgrep -f "$dir/(pg|nats)" >/dev/null || break; sleep 0.1; done
	rm -rf "$dir"
	echo "cluster stopped"
	;;
*)
	sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
	;;
esac
