/* store_faults: a fault-injecting SQLite VFS for tests of a failing disk. With the
 * environment variable AGENTGATE_STORE_FAULTS=FILE, the store's files are opened through
 * a VFS that reads FILE before every write and sync of the database or its WAL:
 *   "full"    the write fails as on a full disk (SQLITE_FULL)
 *   "ioerr"   the write fails with an I/O error
 *   "slow MS" the write waits MS milliseconds, then goes through (a frozen disk)
 *   missing or empty: writes go through.
 * Without the variable nothing changes (the default VFS). Any thread. */
#ifndef AG_STORE_FAULTS_H
#define AG_STORE_FAULTS_H

/* The VFS name to open the database with, or NULL for SQLite's default. */
const char *store_faults_vfs(void);

#endif
