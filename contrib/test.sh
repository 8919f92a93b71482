#!/usr/bin/env bash
# Sets up and runs every test: the normal build, then the same suite under
# AddressSanitizer + UndefinedBehaviorSanitizer, then the cross-thread tests under
# ThreadSanitizer (the tool registry, the plugin host, the plugins' own threads, the
# client library's service thread and its callers, the mcp plugin in a gateway against
# real MCP servers, the store's committer thread on SQLite and PostgreSQL, and the NATS
# bus's threads).
set -euo pipefail
cd "$(dirname "$0")/.."
contrib/deps.sh --test
# the npm trees: the API tests, the web UI's toolchain (the bundle check), its browser tests
for d in tests/node web tests/web; do
  if [ -f "$d/package.json" ]; then
    (cd "$d" && npm ci --no-audit --no-fund --loglevel=error)
  fi
done
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j2)
cmake -S . -B build-asan -DAG_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-asan -j"$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --output-on-failure -j2)
cmake -S . -B build-tsan -DAG_TSAN=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-tsan -j"$jobs" --target test_tools test_host test_plugins test_workspace \
  test_client agentgate plugin_mcp test_store_conformance test_natsbus test_lease
TSAN_OPTIONS=halt_on_error=1 build-tsan/tests/test_tools
TSAN_OPTIONS=halt_on_error=1 build-tsan/tests/test_host
TSAN_OPTIONS=halt_on_error=1 build-tsan/tests/test_plugins
TSAN_OPTIONS=halt_on_error=1 build-tsan/tests/test_workspace
TSAN_OPTIONS=halt_on_error=1 build-tsan/tests/test_store_conformance sqlite
TSAN_OPTIONS=halt_on_error=1 build-tsan/tests/test_store_conformance postgres
# the NATS bus's threads (libnats', the publisher) and the loop; leases raced by threads
TSAN_OPTIONS=halt_on_error=1 build-tsan/tests/test_natsbus
TSAN_OPTIONS=halt_on_error=1 build-tsan/tests/test_lease
# the mcp plugin's I/O thread against real servers, in a gateway under ThreadSanitizer
if command -v node >/dev/null; then
  (cd tests/node && TSAN_OPTIONS=halt_on_error=1 AGENTGATE_BIN="$PWD/../../build-tsan/agentgate" \
    node --test --test-concurrency=1 mcp.test.mjs)
fi
TSAN_OPTIONS=halt_on_error=1 build-tsan/tests/test_client
