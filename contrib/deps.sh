#!/usr/bin/env bash
# Installs what agentgate needs to build and test on Debian 12, if it is missing.
# Usage: contrib/deps.sh [--test]   (--test adds what only the tests use: Node.js and npm,
#        Chromium for the web UI's browser tests, systemd for `systemd-analyze verify`
#        of the unit — it needs no running systemd — PostgreSQL's server, which the
#        store's tests start themselves in a temporary directory: tests/pgserver.sh, and
#        tmux, the terminal OpenCode's TUI runs in for node_opencode, nats-server,
#        which the NATS bus's tests start themselves: tests/natsserver.sh, and procps,
#        whose pgrep the cluster tests ask that no process of theirs is left, and git, which
#        the workspace's snapshot and .gitignore tests run in temporary repositories)
set -euo pipefail
pkgs=(build-essential cmake pkg-config libwebsockets-dev libsqlite3-dev libpq-dev
      libcurl4-openssl-dev libcjson-dev libcmocka-dev zlib1g-dev libnats-dev)
if [ "${1:-}" = "--test" ]; then
  pkgs+=(sqlite3 chromium systemd postgresql tmux nats-server procps git)
  # Node may come from elsewhere than Debian's package (as on the CI image): keep it.
  command -v node >/dev/null && command -v npm >/dev/null || pkgs+=(nodejs npm)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
