/*
 * db_int -- what lib/db*.c share and nobody else sees: the connection, the
 * error text, and the statement helpers, so that a query reads as a query:
 *
 *	struct db_q q;
 *	if (db_q_open(&q, db, "SELECT id, kind FROM certificates"
 *	              " WHERE mailbox = ?", DB_ARGS(DB_TEXT(mailbox)),
 *	              err, errlen) != 0)
 *		return -1;
 *	while (db_q_next(&q) > 0)
 *		use(db_q_int(&q, 0), db_q_text(&q, 1));
 *	return db_q_close(&q);
 *
 * Every "database: ..." error is written here, in one place.  Two
 * backends fill the table of operations behind struct db: db_sqlite.c
 * (SQLite) and db_pg.c (PostgreSQL through libpq).  The SQL the db_*.c
 * files write runs on both: '?' and '?N' parameters, ON CONFLICT, no
 * SQLite-only functions.  Public interface: db.h.
 */
#ifndef SMIME_DB_INT_H
#define SMIME_DB_INT_H

#include "db.h"

#include <stddef.h>

struct db_stmt; /* a backend's statement */
struct db_ops;

struct db {
	const struct db_ops *ops;
	void *conn;                 /* sqlite3 *, PGconn * */
	struct db_stmt *audit_last; /* prepared once: the writer's hot path */
	struct db_stmt *audit_ins;
	struct db_stmt *audit_lock, *audit_id;
	/* The chain head this connection wrote last, while the write
	 * transaction it wrote it in is open (chain_known; cleared by begin,
	 * commit and rollback): a batch of rows takes the node's lock and
	 * reads the previous hash once, not once a row. */
	int chain_known;
	char chain_hash[65];
	long long changes;      /* PostgreSQL: rows of the last statement */
	unsigned long stmt_seq; /* PostgreSQL: names of kept statements */
	unsigned conn_gen;      /* PostgreSQL: connections made (reconnects) */
	int readonly;           /* PostgreSQL: opened DB_READONLY */
	int lost_tx;            /* PostgreSQL: the connection dropped inside a
	                           transaction not yet ended by the caller */
	char msg[512];          /* PostgreSQL: the last error */
	int job_fd; /* SQLite: the lock file of db_job_lock held, else -1 */
	long long job_key; /* PostgreSQL: the advisory lock held ... */
	int job_held;      /* ... when set: taken again on a reconnect */
	char node[DB_NODE_MAX + 1]; /* the audit chain rows go to (issue 16;
	                               "": none named, the chain of schema 8) */
};

/* Migrations: db_migrations[i] takes the schema from version i to i + 1
 * (db.c; tests build old databases with it). */
extern const char *const db_migrations[DB_SCHEMA_VERSION];

/* The last error of db in words; a lock held elsewhere says so plainly. */
const char *db_errmsg(struct db *db);

/* Run sql (one or more statements, no parameters); 0 or -1 with err
 * filled ("database: ..."). */
int db_exec_sql(struct db *db, const char *sql, char *err, size_t errlen);

/* Run schema text written for SQLite (a migration) in the dialect of db's
 * backend (db_pg.c translates it); 0 or -1 with err filled. */
int db_exec_ddl(struct db *db, const char *sql, char *err, size_t errlen);

/* Open target (an SQLite path or a postgresql:// URI) without looking at
 * or migrating its schema: for tests that build old databases.  0 or -1. */
int db_open_raw(const char *target, enum db_open_mode mode, struct db **out,
                char *err, size_t errlen);

/* Migrate an open database to schema version (at most
 * DB_SCHEMA_VERSION), one transaction per step.  0 or -1. */
int db_migrate_to(struct db *db, int version, char *err, size_t errlen);

/* Record the schema version (PRAGMA user_version, or PostgreSQL's
 * schema_version table) outside of the migrations; 0 or -1. */
int db_set_version(struct db *db, int version, char *err, size_t errlen);

/* 1 when db is a PostgreSQL connection, 0 for SQLite. */
int db_is_pg(const struct db *db);

/* A read transaction: one consistent view for several statements (ended
 * with db_rollback).  0 or -1. */
int db_begin_read(struct db *db, char *err, size_t errlen);

/* Inside a write transaction: writers of table wait for each other until
 * it ends (SQLite's BEGIN IMMEDIATE already does that; PostgreSQL takes a
 * table lock that readers pass).  0 or -1. */
int db_lock_writers(struct db *db, const char *table, char *err, size_t errlen);

/* ---- statement parameters ---------------------------------------------
 * One typed value per '?': DB_TEXT(s) (NULL: SQL NULL), DB_INT(n), DB_ID(n)
 * (n > 0, else SQL NULL), DB_BLOB(p, n) (bytes).  DB_ARGS(...) passes the
 * list and its length; DB_NOARGS none.  The inline functions give the
 * compiler the types.  DB_VAL_REAL is only a column's type (db_q_type). */
enum db_val_type {
	DB_VAL_NULL,
	DB_VAL_INT,
	DB_VAL_TEXT,
	DB_VAL_BLOB,
	DB_VAL_REAL
};

struct db_val {
	enum db_val_type type;
	long long i;
	const char *s;
	enum db_val_type of; /* the type the value is, also when NULL
	                        (PostgreSQL types its parameters) */
};

static inline struct db_val db_val_text(const char *s)
{
	struct db_val v = { s ? DB_VAL_TEXT : DB_VAL_NULL, 0, s, DB_VAL_TEXT };
	return v;
}

static inline struct db_val db_val_int(long long i)
{
	struct db_val v = { DB_VAL_INT, i, NULL, DB_VAL_INT };
	return v;
}

static inline struct db_val db_val_id(long long i)
{
	struct db_val v = { i > 0 ? DB_VAL_INT : DB_VAL_NULL, i, NULL,
		            DB_VAL_INT };
	return v;
}

static inline struct db_val db_val_blob(const void *p, size_t n)
{
	struct db_val v = { p ? DB_VAL_BLOB : DB_VAL_NULL, (long long)n,
		            (const char *)p, DB_VAL_BLOB };
	return v;
}

#define DB_TEXT(s)    db_val_text(s)
#define DB_INT(i)     db_val_int(i)
#define DB_ID(i)      db_val_id(i)
#define DB_BLOB(p, n) db_val_blob(p, n)
#define DB_ARGS(...)                                                   \
	(const struct db_val[]){ __VA_ARGS__ },                        \
	        (int)(sizeof((const struct db_val[]){ __VA_ARGS__ }) / \
	              sizeof(struct db_val))
#define DB_NOARGS NULL, 0

/* ---- statements -------------------------------------------------------- */

/* An open statement and where its error goes. */
struct db_q {
	struct db *db;
	struct db_stmt *st;
	int keep; /* a cached statement: reset, not finalized, by close */
	int failed;
	char *err;
	size_t errlen;
};

/* Prepare sql and bind args.  0, or -1 with err filled (nothing to
 * close). */
int db_q_open(struct db_q *q, struct db *db, const char *sql,
              const struct db_val *args, int nargs, char *err, size_t errlen);

/* The same with a statement prepared once and kept in *slot (finalized by
 * db_close): for the hot paths. */
int db_q_reuse(struct db_q *q, struct db *db, struct db_stmt **slot,
               const char *sql, const struct db_val *args, int nargs, char *err,
               size_t errlen);

/* Step: 1 with a row, 0 at the end, -1 on error (err filled). */
int db_q_next(struct db_q *q);

/* Column col of the current row: an integer (0 for NULL), text (NULL for
 * NULL; valid until the next step) or a malloc'd copy of it. */
long long db_q_int(const struct db_q *q, int col);
const char *db_q_text(const struct db_q *q, int col);
char *db_q_dup(const struct db_q *q, int col);

/* The number of columns of the statement's rows. */
int db_q_ncols(const struct db_q *q);

/* The type of column col's value in the current row (DB_VAL_NULL for
 * NULL), its bytes (text or blob: valid until the next step; *n gets the
 * length) and a real's value.  Used where the raw value matters (the audit
 * hash); the other columns read through db_q_int and db_q_text. */
enum db_val_type db_q_type(const struct db_q *q, int col);
const void *db_q_blob(const struct db_q *q, int col, size_t *n);
double db_q_real(const struct db_q *q, int col);

/* End the statement: 0, or -1 when a step failed.  NULL is fine. */
int db_q_close(struct db_q *q);

/* Run a statement that returns nothing the caller wants (one step: a
 * RETURNING clause's changes are all made by then).  0 or -1. */
int db_run(struct db *db, const char *sql, const struct db_val *args, int nargs,
           char *err, size_t errlen);

/* The first row's first column as an integer into *out (may be NULL):
 * 1 when there is a row, 0 when none, -1 on error. */
int db_get_int(struct db *db, const char *sql, const struct db_val *args,
               int nargs, long long *out, char *err, size_t errlen);

/* The id of the last insert (SQLite's rowid, PostgreSQL's lastval()) and
 * the rows changed by the last statement. */
long long db_last_id(struct db *db);
int db_changes(struct db *db);

/* Run fn inside a write transaction: the caller's when one is open, else
 * its own (committed when fn returns 0, rolled back when not).  Returns
 * fn's result, or -1. */
int db_atomic(struct db *db, int (*fn)(struct db *, void *, char *, size_t),
              void *arg, char *err, size_t errlen);

/* ---- rows as structs ----------------------------------------------------
 * A struct filled from a SELECT is described once by a table of its
 * columns: the name, the type and where the field is. */
enum db_col_type { DB_COL_INT, DB_COL_TIME, DB_COL_TEXT };

struct db_col {
	const char *name;
	enum db_col_type type;
	size_t off;
};

#define DB_COL(type, s, field)                   \
	{                                        \
#field, type, offsetof(s, field) \
	}

/* The columns of DB_CERT_IDENTITY (db.h) in struct s, in that order. */
#define DB_CERT_IDENTITY_COLS(s)                                         \
	DB_COL(DB_COL_TEXT, s, subject), DB_COL(DB_COL_TEXT, s, issuer), \
	        DB_COL(DB_COL_TEXT, s, serial),                          \
	        DB_COL(DB_COL_TEXT, s, fingerprint),                     \
	        DB_COL(DB_COL_TIME, s, not_before),                      \
	        DB_COL(DB_COL_TIME, s, not_after)

/* "p.a, p.b, ..." (prefix may be "") into buf; returns buf. */
const char *db_cols_list(const struct db_col *cols, size_t n,
                         const char *prefix, char *buf, size_t len);

/* Fill obj from the current row, columns first to first + n - 1.  With dup
 * the text is copied (free with db_cols_free); without, it is borrowed
 * until the next step. */
void db_q_fill(const struct db_q *q, int first, const struct db_col *cols,
               size_t n, void *obj, int dup);

/* Free the text fields of obj and zero it; NULL is fine. */
void db_cols_free(const struct db_col *cols, size_t n, void *obj, size_t size);

/* ---- shared by the db_*.c files ----------------------------------------- */

/* Record a mailbox_history event (db_cert.c); cert_id <= 0 stores NULL. */
int db_history_add(struct db *db, const char *address, long long cert_id,
                   const char *event, const char *detail, const char *actor,
                   char *err, size_t errlen);

/* Migration 4 -> 5 (db_audit.c): chain the audit rows already there. */
int db_audit_chain_existing(struct db *db, char *err, size_t errlen);

/* ---- backends -------------------------------------------------------- */

/* What a backend does; db.c calls these and nothing else.  Functions that
 * fail return -1 and leave their words for errmsg. */
struct db_ops {
	const char *name;
	/* connect db->conn to target; err filled on failure */
	int (*open)(struct db *db, const char *target, enum db_open_mode mode,
	            char *err, size_t errlen);
	void (*close)(struct db *db);
	const char *(*errmsg)(struct db *db);
	int (*exec)(struct db *db, const char *sql);
	/* schema text written for SQLite in this dialect (malloc'd) */
	char *(*ddl)(const char *sql);
	int (*version)(struct db *db); /* -1 on error */
	int (*set_version)(struct db *db, int version);
	int (*in_tx)(struct db *db);
	const char *begin_write, *begin_read;
	/* run first in a migration's transaction (NULL: none) */
	const char *migrate_lock;
	/* "%s" the table; NULL: nothing to do */
	const char *lock_writers;
	/* the audit chain of one node (issue 16): the lock its writers take
	 * inside their write transaction, '?' the node name (NULL: the
	 * transaction is the lock, as BEGIN IMMEDIATE); and the id the next
	 * row gets, from a sequence when nodes write at once */
	const char *audit_node_lock;
	const char *audit_next_id;
	int (*prepare)(struct db *db, const char *sql, int keep,
	               struct db_stmt **out);
	int (*bind)(struct db_stmt *st, const struct db_val *args, int nargs);
	int (*step)(struct db_stmt *st); /* 1 row, 0 done, -1 */
	void (*reset)(struct db_stmt *st);
	void (*finalize)(struct db_stmt *st); /* NULL is fine */
	int (*ncols)(struct db_stmt *st);
	enum db_val_type (*col_type)(struct db_stmt *st, int col);
	long long (*col_int)(struct db_stmt *st, int col);
	double (*col_real)(struct db_stmt *st, int col);
	const char *(*col_text)(struct db_stmt *st, int col);
	const void *(*col_blob)(struct db_stmt *st, int col, size_t *n);
	long long (*last_id)(struct db *db);
	int (*changes)(struct db *db);
	/* run-once jobs and reload notices (db.h: db_job_lock, db_listen):
	 * job_lock sets *got (1 taken, 0 held elsewhere), its error in
	 * db->msg whatever the backend; listen, notify
	 * and wait_notify are NULL where the backend has none (SQLite) */
	int (*job_lock)(struct db *db, const char *name, long long key,
	                int *got);
	void (*job_unlock)(struct db *db, long long key);
	int (*listen)(struct db *db, const char *channel);
	int (*notify)(struct db *db, const char *channel, const char *payload);
	/* 1 a notice (its payload in buf), 0 none within timeout_ms, -1 the
	 * connection is lost */
	int (*wait_notify)(struct db *db, int timeout_ms, char *buf,
	                   size_t len);
};

/* The functions of a backend whose static functions are named
 * PREFIX_open, PREFIX_close, ... (the member names): one list, so the two
 * tables cannot drift apart.  ddl is the backend's own to set. */
#define DB_OPS_FUNCTIONS(p)                                               \
	.open = p##_open, .close = p##_close, .errmsg = p##_errmsg,       \
	.exec = p##_exec, .version = p##_version,                         \
	.set_version = p##_set_version, .in_tx = p##_in_tx,               \
	.prepare = p##_prepare, .bind = p##_bind, .step = p##_step,       \
	.reset = p##_reset, .finalize = p##_finalize, .ncols = p##_ncols, \
	.col_type = p##_col_type, .col_int = p##_col_int,                 \
	.col_real = p##_col_real, .col_text = p##_col_text,               \
	.col_blob = p##_col_blob, .last_id = p##_last_id,                 \
	.changes = p##_changes

/* db_pg_sql.c: sql with '?' and '?N' parameters (outside strings, names
 * and comments) as $N, numbered as SQLite numbers them, and the number of
 * parameters in *nparams; schema text written for SQLite in PostgreSQL's
 * words.  Both malloc'd (NULL: out of memory). */
char *db_pg_params(const char *sql, int *nparams);
char *db_pg_ddl(const char *sql);

extern const struct db_ops db_sqlite_ops; /* db_sqlite.c */
extern const struct db_ops db_pg_ops;     /* db_pg.c */

#endif
