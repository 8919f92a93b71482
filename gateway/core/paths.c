/* paths: an installation's files beside its binary (paths.h). */
#include "paths.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int paths_exe_dir(char *out, size_t n)
{
	char exe[PATH_MAX];
	ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (len <= 0)
		return -1;
	exe[len] = 0;
	char *slash = strrchr(exe, '/');
	if (!slash)
		return -1;
	*slash = 0;
	return snprintf(out, n, "%s", exe) < (int)n ? 0 : -1;
}

int paths_beside_exe(const char *rel, char *out, size_t n)
{
	char dir[PATH_MAX], joined[PATH_MAX * 2], real[PATH_MAX];
	if (paths_exe_dir(dir, sizeof(dir)))
		return -1;
	snprintf(joined, sizeof(joined), "%s/%s", dir, rel);
	if (!realpath(joined, real) || strlen(real) >= n)
		return -1;
	memcpy(out, real, strlen(real) + 1);
	return 0;
}
