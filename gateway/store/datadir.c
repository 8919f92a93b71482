#include "datadir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* The owner's description as it wrote it: "agentgate serve, pid N, at URL". */
static void read_owner(int fd, char *buf, size_t n)
{
	ssize_t got = pread(fd, buf, n - 1, 0);
	buf[got > 0 ? got : 0] = 0;
	buf[strcspn(buf, "\n")] = 0;
	if (!buf[0])
		snprintf(buf, n, "another process (it has not recorded itself yet)");
}

int datadir_lock(const char *dir, const char *owner, struct err *e)
{
	char path[4096];
	if (mkdir(dir, 0700) && errno != EEXIST) {
		err_set(e, ERR_INTERNAL, "cannot create the data directory %.400s: %s", dir,
			strerror(errno));
		return -1;
	}
	snprintf(path, sizeof(path), "%s/agentgate.lock", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		err_set(e, ERR_INTERNAL, "cannot open %.400s: %s", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		int busy = errno == EWOULDBLOCK;
		char who[300];
		if (busy) {
			read_owner(fd, who, sizeof(who));
			err_set(e, ERR_BUSY, "the data directory %.150s is in use by %.200s; stop that "
				"process, talk to it over its API, or choose another --data", dir, who);
		} else {
			err_set(e, ERR_INTERNAL, "cannot lock %.400s: %s", path, strerror(errno));
		}
		close(fd);
		return -1;
	}
	char desc[512];
	int n = snprintf(desc, sizeof(desc), "%s, pid %ld\n", owner ? owner : "agentgate",
			 (long)getpid());
	if (ftruncate(fd, 0) || pwrite(fd, desc, (size_t)n, 0) != n) {
		err_set(e, ERR_INTERNAL, "cannot write %.400s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

void datadir_unlock(int fd)
{
	if (fd >= 0)
		close(fd); /* closing the only descriptor releases the flock */
}
