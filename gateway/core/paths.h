/* paths: where an installed gateway finds what came with it — its plugins, its web UI,
 * its default config — relative to its own binary, so an installation works wherever
 * its prefix is (`cmake --install build --prefix DIR`), and a build tree's binary never
 * picks up another installation's files. The relative paths are the build's
 * (AG_REL_* from CMake's install directories). Pure apart from reading
 * /proc/self/exe and the file system. Any thread. */
#ifndef AG_PATHS_H
#define AG_PATHS_H
#include <stddef.h>

/* The directory of the running binary in out: 0, or -1. */
int paths_exe_dir(char *out, size_t n);
/* The binary's directory joined with rel, made absolute (realpath), in out: 0 when it
 * exists, else -1. */
int paths_beside_exe(const char *rel, char *out, size_t n);

/* Relative to the binary's directory, as installed (CMake defines them). */
#ifndef AG_REL_PLUGINS
#define AG_REL_PLUGINS "../lib/agentgate/plugins"
#endif
#ifndef AG_REL_WEB
#define AG_REL_WEB "../share/agentgate/web"
#endif
#ifndef AG_REL_CONFIG
#define AG_REL_CONFIG "../etc/agentgate/config.json"
#endif

#endif
