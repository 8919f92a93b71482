#include "store_faults.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct ffile {
	sqlite3_file base;  /* our methods */
	sqlite3_file *real; /* the default VFS's file, right after this struct */
};

static sqlite3_vfs vfs;
static sqlite3_vfs *real_vfs;
static sqlite3_io_methods methods;
static const char *control;

/* 0: go through; else the SQLite error to return (after any delay). */
static int fault(void)
{
	char buf[64] = "";
	FILE *f = fopen(control, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	if (!strncmp(buf, "full", 4))
		return SQLITE_FULL;
	if (!strncmp(buf, "ioerr", 5))
		return SQLITE_IOERR_WRITE;
	if (!strncmp(buf, "slow ", 5))
		usleep((useconds_t)atoi(buf + 5) * 1000);
	return 0;
}

static sqlite3_file *real(sqlite3_file *f)
{
	return ((struct ffile *)f)->real;
}

static int f_close(sqlite3_file *f)
{
	return real(f)->pMethods->xClose(real(f));
}

static int f_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off)
{
	return real(f)->pMethods->xRead(real(f), p, n, off);
}

static int f_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
	int rc = fault();
	return rc ? rc : real(f)->pMethods->xWrite(real(f), p, n, off);
}

static int f_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	return real(f)->pMethods->xTruncate(real(f), size);
}

static int f_sync(sqlite3_file *f, int flags)
{
	int rc = fault();
	return rc == SQLITE_FULL ? SQLITE_IOERR_FSYNC
	       : rc	      ? rc
			      : real(f)->pMethods->xSync(real(f), flags);
}

static int f_size(sqlite3_file *f, sqlite3_int64 *size)
{
	return real(f)->pMethods->xFileSize(real(f), size);
}

static int f_lock(sqlite3_file *f, int l)
{
	return real(f)->pMethods->xLock(real(f), l);
}

static int f_unlock(sqlite3_file *f, int l)
{
	return real(f)->pMethods->xUnlock(real(f), l);
}

static int f_check(sqlite3_file *f, int *out)
{
	return real(f)->pMethods->xCheckReservedLock(real(f), out);
}

static int f_fcntl(sqlite3_file *f, int op, void *arg)
{
	return real(f)->pMethods->xFileControl(real(f), op, arg);
}

static int f_sector(sqlite3_file *f)
{
	return real(f)->pMethods->xSectorSize(real(f));
}

static int f_dev(sqlite3_file *f)
{
	return real(f)->pMethods->xDeviceCharacteristics(real(f));
}

static int f_shm_map(sqlite3_file *f, int pg, int sz, int extend, void volatile **pp)
{
	return real(f)->pMethods->xShmMap(real(f), pg, sz, extend, pp);
}

static int f_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
	return real(f)->pMethods->xShmLock(real(f), off, n, flags);
}

static void f_shm_barrier(sqlite3_file *f)
{
	real(f)->pMethods->xShmBarrier(real(f));
}

static int f_shm_unmap(sqlite3_file *f, int del)
{
	return real(f)->pMethods->xShmUnmap(real(f), del);
}

static int f_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp)
{
	return real(f)->pMethods->xFetch(real(f), off, n, pp);
}

static int f_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
	return real(f)->pMethods->xUnfetch(real(f), off, p);
}

static int v_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags, int *out)
{
	struct ffile *ff = (struct ffile *)f;
	ff->real = (sqlite3_file *)(ff + 1);
	int rc = real_vfs->xOpen(real_vfs, name, ff->real, flags, out);
	/* only a file that opened has methods to close: SQLite calls xClose when set */
	ff->base.pMethods = rc == SQLITE_OK && ff->real->pMethods ? &methods : NULL;
	return rc;
}

static void setup(void)
{
	control = getenv("AGENTGATE_STORE_FAULTS");
	real_vfs = sqlite3_vfs_find(NULL);
	if (!control || !*control || !real_vfs)
		return;
	methods = (sqlite3_io_methods){
		.iVersion = 3, .xClose = f_close, .xRead = f_read, .xWrite = f_write,
		.xTruncate = f_truncate, .xSync = f_sync, .xFileSize = f_size, .xLock = f_lock,
		.xUnlock = f_unlock, .xCheckReservedLock = f_check, .xFileControl = f_fcntl,
		.xSectorSize = f_sector, .xDeviceCharacteristics = f_dev, .xShmMap = f_shm_map,
		.xShmLock = f_shm_lock, .xShmBarrier = f_shm_barrier, .xShmUnmap = f_shm_unmap,
		.xFetch = f_fetch, .xUnfetch = f_unfetch,
	};
	vfs = *real_vfs; /* every VFS method but xOpen is the default's */
	vfs.zName = "agentgate-faults";
	vfs.szOsFile = (int)sizeof(struct ffile) + real_vfs->szOsFile;
	vfs.xOpen = v_open;
	vfs.pNext = NULL;
	if (sqlite3_vfs_register(&vfs, 0) != SQLITE_OK)
		control = NULL;
}

const char *store_faults_vfs(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, setup);
	return control && *control ? vfs.zName : NULL;
}
