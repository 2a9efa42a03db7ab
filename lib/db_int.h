/*
 * db_int -- what lib/db*.c share and nobody else sees: the connection, the
 * error text, and the statement helpers.  Public interface: db.h.
 */
#ifndef SMIME_DB_INT_H
#define SMIME_DB_INT_H

#include "db.h"

#include <sqlite3.h>

struct db {
	sqlite3 *h;
	sqlite3_stmt *audit_last; /* prepared once: the writer's hot path */
	sqlite3_stmt *audit_ins;
};

/* The last error of db in words; a lock held elsewhere says so plainly. */
const char *db_errmsg(struct db *db);

/* Run sql (one or more statements, no parameters); 0 or -1 with err
 * filled ("database: ..."). */
int db_exec_sql(struct db *db, const char *sql, char *err, size_t errlen);

/* Prepare sql; NULL with err filled on error. */
sqlite3_stmt *db_prep(struct db *db, const char *sql, char *err, size_t errlen);

/* Step st once and finalize it; 0 or -1 with err filled. */
int db_step_done(struct db *db, sqlite3_stmt *st, char *err, size_t errlen);

/* Bind s (NULL: SQL NULL) to parameter i. */
void db_bind_text(sqlite3_stmt *st, int i, const char *s);

/* A malloc'd copy of column i (NULL for SQL NULL). */
char *db_col_dup(sqlite3_stmt *st, int i);

/* Record a mailbox_history event (db_cert.c); cert_id <= 0 stores NULL. */
int db_history_add(struct db *db, const char *address, long long cert_id,
                   const char *event, const char *detail, const char *actor,
                   char *err, size_t errlen);

/* Migration 4 -> 5 (db_audit.c): chain the audit rows already there. */
int db_audit_chain_existing(struct db *db, char *err, size_t errlen);

#endif
