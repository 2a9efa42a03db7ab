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
 * Every "database: ..." error is written here, in one place.  Only db.c
 * and db_audit.c's hash of raw column values touch sqlite3 directly: the
 * seam a second backend would fill.  Public interface: db.h.
 */
#ifndef SMIME_DB_INT_H
#define SMIME_DB_INT_H

#include "db.h"

#include <stddef.h>
#include <sqlite3.h>

struct db {
	sqlite3 *h;
	sqlite3_stmt *audit_last; /* prepared once: the writer's hot path */
	sqlite3_stmt *audit_ins;
};

/* Migrations: db_migrations[i] takes the schema from version i to i + 1
 * (db.c; tests build old databases with it). */
extern const char *const db_migrations[DB_SCHEMA_VERSION];

/* The last error of db in words; a lock held elsewhere says so plainly. */
const char *db_errmsg(struct db *db);

/* Run sql (one or more statements, no parameters); 0 or -1 with err
 * filled ("database: ..."). */
int db_exec_sql(struct db *db, const char *sql, char *err, size_t errlen);

/* ---- statement parameters ---------------------------------------------
 * One typed value per '?': DB_TEXT(s) (NULL: SQL NULL), DB_INT(n), DB_ID(n)
 * (n > 0, else SQL NULL).  DB_ARGS(...) passes the list and its length;
 * DB_NOARGS none.  The inline functions give the compiler the types. */
enum db_val_type { DB_VAL_NULL, DB_VAL_INT, DB_VAL_TEXT };

struct db_val {
	enum db_val_type type;
	long long i;
	const char *s;
};

static inline struct db_val db_val_text(const char *s)
{
	struct db_val v = { s ? DB_VAL_TEXT : DB_VAL_NULL, 0, s };
	return v;
}

static inline struct db_val db_val_int(long long i)
{
	struct db_val v = { DB_VAL_INT, i, NULL };
	return v;
}

static inline struct db_val db_val_id(long long i)
{
	struct db_val v = { i > 0 ? DB_VAL_INT : DB_VAL_NULL, i, NULL };
	return v;
}

#define DB_TEXT(s) db_val_text(s)
#define DB_INT(i)  db_val_int(i)
#define DB_ID(i)   db_val_id(i)
#define DB_ARGS(...)                                                   \
	(const struct db_val[]){ __VA_ARGS__ },                        \
	        (int)(sizeof((const struct db_val[]){ __VA_ARGS__ }) / \
	              sizeof(struct db_val))
#define DB_NOARGS NULL, 0

/* ---- statements -------------------------------------------------------- */

/* An open statement and where its error goes. */
struct db_q {
	struct db *db;
	sqlite3_stmt *st;
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
int db_q_reuse(struct db_q *q, struct db *db, sqlite3_stmt **slot,
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

/* The rowid of the last insert and the rows changed by the last
 * statement. */
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

#endif
