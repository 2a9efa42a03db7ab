/* db_sqlite -- the SQLite backend of the store (db_int.h, struct db_ops):
 * one file, WAL mode so smimectl writes while the milter reads, the schema
 * version in PRAGMA user_version. */
#include "db_int.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define DB_BUSY_MS 5000

#define H(db)  ((sqlite3 *)(db)->conn)
#define ST(st) ((sqlite3_stmt *)(st))

static const char *lite_errmsg(struct db *db)
{
	int code = sqlite3_errcode(H(db)) & 0xff;

	if (code == SQLITE_BUSY || code == SQLITE_LOCKED)
		return "the database is locked by another process (waited 5 s; "
		       "another smimectl may be running): try again";
	return sqlite3_errmsg(H(db));
}

static int lite_exec(struct db *db, const char *sql)
{
	return sqlite3_exec(H(db), sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

/* Switches a new database to WAL.  The switch wants the file to itself,
 * and SQLite answers SQLITE_BUSY at once, without its busy handler, while
 * another connection creates the same file (two processes starting on a
 * fresh path): retry for as long as the busy handler would wait. */
static int lite_wal(struct db *db)
{
	for (int waited = 0;; waited += 10) {
		int rc = sqlite3_exec(H(db), "PRAGMA journal_mode = WAL", NULL,
		                      NULL, NULL);
		if (rc == SQLITE_OK)
			return 0;
		if ((rc & 0xff) != SQLITE_BUSY || waited >= DB_BUSY_MS)
			return -1;
		usleep(10 * 1000);
	}
}

static int lite_open(struct db *db, const char *path, enum db_open_mode mode,
                     char *err, size_t errlen)
{
	int flags = SQLITE_OPEN_FULLMUTEX |
	            (mode == DB_READONLY ? SQLITE_OPEN_READONLY
	                                 : SQLITE_OPEN_READWRITE) |
	            (mode == DB_CREATE ? SQLITE_OPEN_CREATE : 0);
	sqlite3 *h = NULL;
	mode_t old;
	int rc;

	db->job_fd = -1;
	if (mode != DB_CREATE && access(path, F_OK) != 0)
		return seterr(err, errlen,
		              "database %s: %s (run \"smimectl init\" first)",
		              path, strerror(errno));
	old = umask(077);
	rc = sqlite3_open_v2(path, &h, flags, NULL);
	db->conn = h;
	if (rc != SQLITE_OK) {
		seterr(err, errlen, "database %s: %s", path,
		       h ? sqlite3_errmsg(h) : "cannot open");
		umask(old);
		sqlite3_close_v2(h);
		return -1;
	}
	sqlite3_busy_timeout(h, DB_BUSY_MS);
	sqlite3_extended_result_codes(h, 1);
	/* the file is made here, under the umask; WAL and SHM files take
	 * its mode */
	rc = (mode == DB_CREATE && lite_wal(db)) ||
	     lite_exec(db, "PRAGMA foreign_keys = ON;"
	                   " PRAGMA synchronous = NORMAL");
	umask(old);
	if (rc) {
		seterr(err, errlen, "database %s: %s", path, lite_errmsg(db));
		sqlite3_close_v2(h);
		return -1;
	}
	return 0;
}

static void lite_close(struct db *db)
{
	if (db->job_fd >= 0)
		close(db->job_fd); /* lets go of a job's lock */
	sqlite3_close_v2(H(db));
}

static int lite_version(struct db *db)
{
	sqlite3_stmt *st = NULL;
	int v = -1;

	if (sqlite3_prepare_v2(H(db), "PRAGMA user_version", -1, &st, NULL) ==
	            SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

static int lite_set_version(struct db *db, int version)
{
	char sql[64];

	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", version);
	return lite_exec(db, sql);
}

static int lite_in_tx(struct db *db)
{
	return !sqlite3_get_autocommit(H(db));
}

static int lite_prepare(struct db *db, const char *sql, int keep,
                        struct db_stmt **out)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v3(H(db), sql, -1,
	                            keep ? SQLITE_PREPARE_PERSISTENT : 0, &st,
	                            NULL);

	*out = (struct db_stmt *)st;
	return rc == SQLITE_OK ? 0 : -1;
}

static int lite_bind(struct db_stmt *s, const struct db_val *args, int nargs)
{
	sqlite3_stmt *st = ST(s);

	for (int i = 0; i < nargs; i++) {
		int rc;
		switch (args[i].type) {
		case DB_VAL_INT:
			rc = sqlite3_bind_int64(st, i + 1,
			                        (sqlite3_int64)args[i].i);
			break;
		case DB_VAL_TEXT:
			rc = sqlite3_bind_text(st, i + 1, args[i].s, -1,
			                       SQLITE_TRANSIENT);
			break;
		case DB_VAL_BLOB:
			rc = sqlite3_bind_blob64(st, i + 1, args[i].s,
			                         (sqlite3_uint64)args[i].i,
			                         SQLITE_TRANSIENT);
			break;
		default:
			rc = sqlite3_bind_null(st, i + 1);
			break;
		}
		if (rc != SQLITE_OK)
			return -1;
	}
	return 0;
}

static int lite_step(struct db_stmt *st)
{
	int rc = sqlite3_step(ST(st));

	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

static void lite_reset(struct db_stmt *st)
{
	sqlite3_reset(ST(st));
	sqlite3_clear_bindings(ST(st));
}

static void lite_finalize(struct db_stmt *st)
{
	sqlite3_finalize(ST(st));
}

static int lite_ncols(struct db_stmt *st)
{
	return sqlite3_column_count(ST(st));
}

static enum db_val_type lite_col_type(struct db_stmt *st, int col)
{
	switch (sqlite3_column_type(ST(st), col)) {
	case SQLITE_INTEGER:
		return DB_VAL_INT;
	case SQLITE_FLOAT:
		return DB_VAL_REAL;
	case SQLITE_BLOB:
		return DB_VAL_BLOB;
	case SQLITE_TEXT:
		return DB_VAL_TEXT;
	default:
		return DB_VAL_NULL;
	}
}

static long long lite_col_int(struct db_stmt *st, int col)
{
	return (long long)sqlite3_column_int64(ST(st), col);
}

static double lite_col_real(struct db_stmt *st, int col)
{
	return sqlite3_column_double(ST(st), col);
}

static const char *lite_col_text(struct db_stmt *st, int col)
{
	return (const char *)sqlite3_column_text(ST(st), col);
}

static const void *lite_col_blob(struct db_stmt *st, int col, size_t *n)
{
	/* blob first, then its length (sqlite3 docs: the safe order) */
	const void *p = sqlite3_column_type(ST(st), col) == SQLITE_BLOB
	                        ? sqlite3_column_blob(ST(st), col)
	                        : sqlite3_column_text(ST(st), col);

	*n = (size_t)sqlite3_column_bytes(ST(st), col);
	return p;
}

static long long lite_last_id(struct db *db)
{
	return (long long)sqlite3_last_insert_rowid(H(db));
}

static int lite_changes(struct db *db)
{
	return sqlite3_changes(H(db));
}

/* ---- run-once jobs: an flock on DATABASE.NAME.lock --------------------- */

static int lite_job_lock(struct db *db, const char *name, long long key,
                         int *got)
{
	const char *path = sqlite3_db_filename(H(db), "main");
	char *file;
	int fd, e;
	mode_t old;

	(void)key;
	if (db->job_fd >= 0) {
		snprintf(db->msg, sizeof(db->msg), "a job lock is held");
		return -1;
	}
	if (path == NULL || *path == '\0' ||
	    (file = malloc(strlen(path) + strlen(name) + 8)) == NULL) {
		snprintf(db->msg, sizeof(db->msg), "no file to lock beside");
		return -1;
	}
	sprintf(file, "%s.%s.lock", path, name);
	for (char *p = file + strlen(path); *p; p++)
		if (*p == ' ')
			*p = '-';
	old = umask(077);
	fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	umask(old);
	e = errno;
	if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) != 0) {
		e = errno;
		close(fd);
		fd = -2;
	}
	if (fd >= 0) {
		db->job_fd = fd;
		*got = 1;
	} else if (fd == -2 && e == EWOULDBLOCK) {
		*got = 0;
	} else {
		snprintf(db->msg, sizeof(db->msg), "%.80s: %s", file,
		         strerror(e));
		free(file);
		return -1;
	}
	free(file);
	return 0;
}

static void lite_job_unlock(struct db *db, long long key)
{
	(void)key;
	if (db->job_fd >= 0)
		close(db->job_fd);
	db->job_fd = -1;
}

const struct db_ops db_sqlite_ops = {
	DB_OPS_FUNCTIONS(lite),
	.name = "sqlite",
	.ddl = NULL, /* the migrations are SQLite's own text */
	.begin_write = "BEGIN IMMEDIATE",
	.begin_read = "BEGIN",
	.migrate_lock = NULL, /* BEGIN IMMEDIATE is the lock */
	.lock_writers = NULL,
	.job_lock = lite_job_lock,
	.job_unlock = lite_job_unlock,
	.listen = NULL, /* one host: the pidfile and SIGUSR1 */
	.notify = NULL,
	.wait_notify = NULL,
	.audit_node_lock = NULL, /* one host: BEGIN IMMEDIATE */
	.audit_next_id = "SELECT COALESCE(MAX(id), 0) + 1 FROM audit",
};
