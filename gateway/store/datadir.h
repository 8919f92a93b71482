/* datadir: one owner process per data directory. The owner holds an exclusive flock on
 * DIR/agentgate.lock and writes who it is there; a second `serve` or `run` on the same
 * directory is refused at once with that description. The kernel drops the lock when
 * the owner exits, however it exits, so a lock left by a killed process is no obstacle.
 * Any thread; the descriptor is close-on-exec (tools' child processes do not keep it). */
#ifndef AG_DATADIR_H
#define AG_DATADIR_H
#include "err.h"

/* Creates dir if needed and takes its lock; owner (e.g. "agentgate serve at URL") is
 * recorded with the pid. Returns the lock's descriptor, or -1 with e: ERR_BUSY naming
 * the directory and its owner, or ERR_INTERNAL naming the system error. */
int datadir_lock(const char *dir, const char *owner, struct err *e);
/* The same for a SQLite database file outside any data directory: the lock is
 * PATH.lock beside it, the refusal names the database. */
int datadir_lock_db(const char *db, const char *owner, struct err *e);
/* Releases the lock (the file stays: removing it would race a new owner). */
void datadir_unlock(int fd);

#endif
