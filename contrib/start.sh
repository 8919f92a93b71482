#!/usr/bin/env bash
# Sets up and starts the gateway on its embedded default model (scripted/demo):
# no network, no keys. Serves http://127.0.0.1:4096 with its data in ./data.
set -euo pipefail
cd "$(dirname "$0")/.."
contrib/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
exec build/agentgate serve "$@"
