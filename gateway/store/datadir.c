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

/* Takes the lock at path for owner; busy_fmt words the refusal (the holder's line). */
static int lock_file(const char *path, const char *owner, const char *what,
		     const char *instead, struct err *e)
{
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
			err_set(e, ERR_BUSY, "%.160s is in use by %.200s; stop that process, talk to "
				"it over its API, or %s", what, who, instead);
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

int datadir_lock(const char *dir, const char *owner, struct err *e)
{
	char path[4096], what[300];
	if (mkdir(dir, 0700) && errno != EEXIST) {
		err_set(e, ERR_INTERNAL, "cannot create the data directory %.400s: %s", dir,
			strerror(errno));
		return -1;
	}
	snprintf(path, sizeof(path), "%s/agentgate.lock", dir);
	snprintf(what, sizeof(what), "the data directory %.150s", dir);
	return lock_file(path, owner, what, "choose another --data", e);
}

int datadir_lock_db(const char *db, const char *owner, struct err *e)
{
	char path[4096], what[300];
	if (snprintf(path, sizeof(path), "%s.lock", db) >= (int)sizeof(path)) {
		err_set(e, ERR_INVALID, "the database's path is too long");
		return -1;
	}
	snprintf(what, sizeof(what), "the database %.150s", db);
	return lock_file(path, owner, what, "choose another --store", e);
}

void datadir_unlock(int fd)
{
	if (fd >= 0)
		close(fd); /* closing the only descriptor releases the flock */
}
