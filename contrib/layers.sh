#!/bin/sh
# The layers of gateway/ may use only their own system libraries: libwebsockets in net/
# and core/loop.c, SQLite in the store's SQLite backend (store/store_sqlite.c and its
# fault-injecting VFS), libpq in its PostgreSQL backend (store/store_pg.c, and the
# cluster's leases: store/lease_pg.c), libcurl in llm/, dlopen in plugin/, zlib in bus/
# (batchz.c), libnats in bus/nats*.c. (Which project headers a layer
# sees is enforced by the include paths of its CMake library.) Run by every build;
# prints each include that breaks the rule and fails.
cd "$(dirname "$0")/../gateway" || exit 2
bad=0
check() { # header, then the paths (grep -E on ./dir/file) allowed to include it
	hdr=$1
	allowed=$2
	found=$(grep -rlE "#include *<$hdr>" --include='*.c' --include='*.h' . | grep -vE "^\./($allowed)$")
	for f in $found; do
		echo "gateway/${f#./}: includes <$(echo "$hdr" | tr -d '\\')>, which only $3 may use" >&2
		bad=1
	done
}
check 'libwebsockets\.h' 'net/.*|core/loop\.c' 'net/ and core/loop.c'
check 'sqlite3\.h' 'store/store_sqlite\.c|store/store_faults\.[ch]' 'store/store_sqlite.c and store/store_faults.c'
check 'libpq-fe\.h' 'store/store_pg\.c|store/lease_pg\.c' 'store/store_pg.c and store/lease_pg.c'
check 'curl/curl\.h' 'llm/.*' 'llm/'
check 'dlfcn\.h' 'plugin/.*' 'plugin/'
check 'nats/nats\.h' 'bus/nats.*\.[ch]' 'bus/nats*.c'
check 'zlib\.h' 'bus/batchz\.c' 'bus/batchz.c'
exit $bad
