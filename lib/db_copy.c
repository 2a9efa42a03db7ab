/*
 * db_copy -- copy an SQLite store into an empty database (smimectl
 * migrate): every table and column as the source's own catalogue
 * (sqlite_master, pragma_table_info, pragma_foreign_key_list) names them,
 * so a column a later migration adds comes along by itself.  Values keep
 * their types (the audit hash reads them raw), ids are kept, identity
 * sequences are set past them, and the copy is checked (rows per table,
 * the audit chain's head) before it is reported.  See db.h.
 */
#include "db_int.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the order of the tables (pure) ----------------------------------- */

/* Whether table t[i] references one of the tables still to place. */
static int waits_for(const struct db_copy_table *t, size_t n, size_t i,
                     const unsigned char *placed)
{
	for (size_t r = 0; r < t[i].nrefs; r++)
		for (size_t j = 0; j < n; j++)
			if (j != i && !placed[j] &&
			    strcmp(t[i].refs[r], t[j].name) == 0)
				return 1;
	return 0;
}

int db_copy_order(struct db_copy_table *t, size_t n, char *err, size_t errlen)
{
	struct db_copy_table *out;
	unsigned char *placed;
	size_t done = 0;
	int rc = 0;

	if (n == 0)
		return 0;
	out = calloc(n, sizeof(*out));
	placed = calloc(n, 1);
	if (out == NULL || placed == NULL) {
		free(out);
		free(placed);
		return seterr(err, errlen, "out of memory");
	}
	/* each round takes, in catalogue order, the first table whose
	 * references are all placed: stable, and a cycle shows as a round
	 * that finds none */
	while (done < n) {
		size_t i;
		for (i = 0; i < n; i++)
			if (!placed[i] && !waits_for(t, n, i, placed))
				break;
		if (i == n) {
			for (i = 0; i < n && placed[i]; i++)
				;
			rc = seterr(err, errlen,
			            "the foreign keys of table %s form a "
			            "cycle: "
			            "no order to copy the tables in",
			            t[i].name);
			break;
		}
		placed[i] = 1;
		out[done++] = t[i];
	}
	if (rc == 0)
		memcpy(t, out, n * sizeof(*t));
	free(out);
	free(placed);
	return rc;
}

/* ---- the report --------------------------------------------------------- */

void db_copy_report_free(struct db_copy_report *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n; i++) {
		free(r->tables[i].name);
		strv_free(r->tables[i].refs, r->tables[i].nrefs);
		strv_free(r->tables[i].cols, r->tables[i].ncols);
	}
	free(r->tables);
	memset(r, 0, sizeof(*r));
}

/* Append a copy of s to *v (*n entries): 0 or -1 (out of memory). */
static int strv_add(char ***v, size_t *n, const char *s)
{
	char **nv = realloc(*v, (*n + 1) * sizeof(**v));

	if (nv == NULL)
		return -1;
	*v = nv;
	if ((nv[*n] = strdup(s ? s : "")) == NULL)
		return -1;
	(*n)++;
	return 0;
}

/* The first column of every row of sql (one text parameter arg, or none
 * when NULL)
 * appended to *v.  0 or -1 with err filled. */
static int list_rows(struct db *db, const char *sql, const char *arg, char ***v,
                     size_t *n, char *err, size_t errlen)
{
	struct db_q q;
	int s;

	if ((arg ? db_q_open(&q, db, sql, DB_ARGS(DB_TEXT(arg)), err, errlen)
	         : db_q_open(&q, db, sql, DB_NOARGS, err, errlen)) != 0)
		return -1;
	while ((s = db_q_next(&q)) > 0)
		if (strv_add(v, n, db_q_text(&q, 0)) != 0) {
			db_q_close(&q);
			return seterr(err, errlen, "out of memory");
		}
	return db_q_close(&q);
}

/* The tables of the SQLite database src with their columns and the tables
 * they reference, in copy order, into r.  0 or -1 with err filled. */
static int read_catalogue(struct db *src, struct db_copy_report *r, char *err,
                          size_t errlen)
{
	char **names = NULL;
	size_t n = 0;

	/* SQLite's own tables (sqlite_sequence, sqlite_stat1) are not ours */
	if (list_rows(src,
	              "SELECT name FROM sqlite_master WHERE type = 'table'"
	              " AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
	              " ORDER BY rowid",
	              NULL, &names, &n, err, errlen) != 0) {
		strv_free(names, n);
		return -1;
	}
	r->tables = calloc(n ? n : 1, sizeof(*r->tables));
	if (r->tables == NULL) {
		strv_free(names, n);
		return seterr(err, errlen, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		struct db_copy_table *t = &r->tables[r->n++];
		t->name = names[i];
		names[i] = NULL;
		if (list_rows(src,
		              "SELECT name FROM pragma_table_info(?)"
		              " ORDER BY cid",
		              t->name, &t->cols, &t->ncols, err, errlen) != 0 ||
		    list_rows(src,
		              "SELECT DISTINCT \"table\" FROM"
		              " pragma_foreign_key_list(?)",
		              t->name, &t->refs, &t->nrefs, err, errlen) != 0) {
			strv_free(names, n);
			return -1;
		}
	}
	strv_free(names, n);
	return db_copy_order(r->tables, r->n, err, errlen);
}

/* ---- SQL text ----------------------------------------------------------- */

/* name as a quoted identifier into buf ("" doubled). */
static const char *ident(const char *name, char *buf, size_t len)
{
	size_t o = 0;

	if (len < 3)
		return "";
	buf[o++] = '"';
	for (const char *p = name; *p && o + 3 < len; p++) {
		if (*p == '"')
			buf[o++] = '"';
		buf[o++] = *p;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

/* "SELECT c1, c2 FROM t" or "INSERT INTO t (c1, c2) VALUES (?, ?)"
 * (malloc'd; NULL: out of memory or a name too long). */
static char *table_sql(const struct db_copy_table *t, int insert)
{
	size_t len = 64 + strlen(t->name) * 2;
	char q[256], *sql, *o;

	for (size_t i = 0; i < t->ncols; i++)
		len += strlen(t->cols[i]) * 2 + 8;
	if ((sql = o = malloc(len)) == NULL)
		return NULL;
	o += sprintf(o, insert ? "INSERT INTO %s (" : "SELECT ",
	             insert ? ident(t->name, q, sizeof(q)) : "");
	for (size_t i = 0; i < t->ncols; i++)
		o += sprintf(o, "%s%s", i ? ", " : "",
		             ident(t->cols[i], q, sizeof(q)));
	if (!insert) {
		sprintf(o, " FROM %s", ident(t->name, q, sizeof(q)));
		return sql;
	}
	o += sprintf(o, ") VALUES (");
	for (size_t i = 0; i < t->ncols; i++)
		o += sprintf(o, "%s?", i ? ", " : "");
	sprintf(o, ")");
	return sql;
}

/* The number of rows of table (1), or 0 when db has no such table; -1 on
 * error.  The catalogue is the backend's own. */
static int table_rows(struct db *db, const char *table, long long *rows,
                      char *err, size_t errlen)
{
	char q[256], sql[320];
	long long there = 0;

	*rows = 0;
	if (db_get_int(db,
	               db_is_pg(db) ? "SELECT count(*) FROM"
	                              " information_schema.tables WHERE"
	                              " table_schema = current_schema()"
	                              " AND table_name = ?"
	                            : "SELECT count(*) FROM sqlite_master"
	                              " WHERE type = 'table' AND name = ?",
	               DB_ARGS(DB_TEXT(table)), &there, err, errlen) < 0)
		return -1;
	if (there == 0)
		return 0;
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s",
	         ident(table, q, sizeof(q)));
	return db_get_int(db, sql, DB_NOARGS, rows, err, errlen) < 0 ? -1 : 1;
}

/* ---- the copy ------------------------------------------------------------ */

/* Column c of the source row as a value of its own type: an integer, text,
 * bytes or NULL; a real number as untyped text in num, for the target's
 * column to read. */
static struct db_val row_value(const struct db_q *q, int c, char *num,
                               size_t numlen)
{
	struct db_val v = { DB_VAL_NULL, 0, NULL, DB_VAL_NULL };
	size_t n = 0;
	const void *p;

	switch (db_q_type(q, c)) {
	case DB_VAL_INT:
		return db_val_int(db_q_int(q, c));
	case DB_VAL_TEXT:
		return db_val_text(db_q_text(q, c));
	case DB_VAL_BLOB:
		p = db_q_blob(q, c, &n);
		return db_val_blob(p ? p : "", n); /* SQLite: NULL when empty */
	case DB_VAL_REAL:
		snprintf(num, numlen, "%.17g", db_q_real(q, c));
		v.type = DB_VAL_TEXT;
		v.s = num;
		return v;
	default:
		return v;
	}
}

/* The first text column of vals (t's row) that is not UTF-8, or -1. */
static int not_utf8_col(const struct db_copy_table *t,
                        const struct db_val *vals)
{
	for (size_t c = 0; c < t->ncols; c++)
		if (vals[c].type == DB_VAL_TEXT && vals[c].s &&
		    !str_is_utf8(vals[c].s))
			return (int)c;
	return -1;
}

/* Copy the rows of t from src into dst (inside both transactions);
 * t->copied counts them.  0 or -1 with err filled. */
static int copy_table(struct db *src, struct db *dst, struct db_copy_table *t,
                      char *err, size_t errlen)
{
	char *sel = table_sql(t, 0), *ins = table_sql(t, 1);
	struct db_val *vals = calloc(t->ncols ? t->ncols : 1, sizeof(*vals));
	char(*nums)[32] = calloc(t->ncols ? t->ncols : 1, sizeof(*nums));
	struct db_stmt *slot = NULL;
	struct db_q sq, iq;
	int rc = -1, s;

	if (sel == NULL || ins == NULL || vals == NULL || nums == NULL) {
		seterr(err, errlen, "out of memory");
		goto out;
	}
	if (db_q_open(&sq, src, sel, DB_NOARGS, err, errlen) != 0)
		goto out;
	while ((s = db_q_next(&sq)) > 0) {
		for (size_t c = 0; c < t->ncols; c++)
			vals[c] = row_value(&sq, (int)c, nums[c],
			                    sizeof(nums[c]));
		if (db_q_reuse(&iq, dst, &slot, ins, vals, (int)t->ncols, err,
		               errlen) != 0 ||
		    (db_q_next(&iq), db_q_close(&iq)) != 0) {
			int c = not_utf8_col(t, vals), made = 0;
			char key[32];
			const char *k = key;
			if (vals[0].type == DB_VAL_INT)
				snprintf(key, sizeof(key), "%lld", vals[0].i);
			else if ((k = utf8_escape(vals[0].s, &made)) == NULL)
				k = "NULL";
			if (c >= 0) {
				rc = DB_COPY_SRC_TEXT;
				seterr(err, errlen,
				       "column %s of the row whose %s is %.40s "
				       "is not UTF-8, and PostgreSQL takes "
				       "UTF-8 text only (correct it in the "
				       "SQLite database first)",
				       t->cols[c], t->cols[0], k);
			}
			if (made)
				free((char *)k);
			break;
		}
		t->copied++;
	}
	if (db_q_close(&sq) == 0 && s == 0 && rc == -1)
		rc = 0;
	if (rc != 0) {
		char e[512];
		snprintf(e, sizeof(e), "%s", err);
		seterr(err, errlen, "table %s, after %lld rows: %s", t->name,
		       t->copied, e);
	}
out:
	dst->ops->finalize(slot);
	free(sel);
	free(ins);
	free(vals);
	free(nums);
	return rc;
}

/* PostgreSQL: every identity column of the copied tables set past its
 * largest value (identity columns do not follow explicit ids as SQLite's
 * rowid does), so the next insert does not collide.  SQLite: nothing to
 * do.  0 or -1 with err filled. */
static int set_identities(struct db *dst, struct db_copy_report *r, char *err,
                          size_t errlen)
{
	if (!db_is_pg(dst))
		return 0;
	for (size_t i = 0; i < r->n; i++) {
		char **cols = NULL, q[256], c[256], sql[768];
		size_t n = 0;
		int rc = list_rows(dst,
		                   "SELECT column_name FROM"
		                   " information_schema.columns WHERE"
		                   " table_schema = current_schema() AND"
		                   " table_name = ? AND is_identity = 'YES'",
		                   r->tables[i].name, &cols, &n, err, errlen);
		for (size_t k = 0; rc == 0 && k < n; k++) {
			snprintf(sql, sizeof(sql),
			         "SELECT setval(pg_get_serial_sequence(?, ?),"
			         " coalesce(max(%s), 0) + 1, false) FROM %s",
			         ident(cols[k], c, sizeof(c)),
			         ident(r->tables[i].name, q, sizeof(q)));
			rc = db_get_int(dst, sql,
			                DB_ARGS(DB_TEXT(q), DB_TEXT(cols[k])),
			                NULL, err, errlen) < 0
			             ? -1
			             : 0;
			r->identities += rc == 0;
		}
		strv_free(cols, n);
		if (rc != 0)
			return -1;
	}
	return 0;
}

/* SQLite's count of commits by other connections (PRAGMA data_version):
 * a change between two reads means the source was written. */
static long long data_version(struct db *src)
{
	long long v = -1;

	if (db_get_int(src, "PRAGMA data_version", DB_NOARGS, &v, NULL, 0) <= 0)
		return -1;
	return v;
}

/* Copy every table inside one read transaction on src and one write
 * transaction on dst, with the row counts checked before the commit. */
static int copy_all(struct db *src, struct db *dst, struct db_copy_report *r,
                    char *err, size_t errlen)
{
	int rc = 0;

	if (db_begin_read(src, err, errlen) != 0)
		return -1;
	if (db_begin(dst, err, errlen) != 0) {
		db_rollback(src);
		return -1;
	}
	for (size_t i = 0; rc == 0 && i < r->n; i++) {
		struct db_copy_table *t = &r->tables[i];
		long long n = 0;
		rc = copy_table(src, dst, t, err, errlen);
		if (rc == 0 &&
		    (table_rows(src, t->name, &t->rows, err, errlen) < 0 ||
		     table_rows(dst, t->name, &n, err, errlen) < 0))
			rc = -1;
		if (rc == 0 && (n != t->rows || t->copied != t->rows)) {
			seterr(err, errlen,
			       "table %s: %lld rows in the source, %lld "
			       "copied, "
			       "%lld in the target",
			       t->name, t->rows, t->copied, n);
			rc = DB_COPY_MISMATCH;
		}
	}
	if (rc == 0)
		rc = set_identities(dst, r, err, errlen);
	db_rollback(src);
	if (rc == 0 && data_version(src) != r->src_version) {
		seterr(err, errlen,
		       "the source was written while it was copied (a milter, "
		       "smimectl or a timer): stop them and run migrate again; "
		       "nothing was copied");
		rc = DB_COPY_SRC_CHANGED;
	}
	if (rc == 0)
		rc = db_commit(dst, err, errlen);
	if (rc != 0)
		db_rollback(dst);
	return rc;
}

/* Delete every copied row again (the copy did not verify), children
 * first, so that the target is empty as it was. */
static void clear_target(struct db *dst, const struct db_copy_report *r)
{
	char q[256], sql[320];

	if (db_begin(dst, NULL, 0) != 0)
		return;
	for (size_t i = r->n; i-- > 0;) {
		snprintf(sql, sizeof(sql), "DELETE FROM %s",
		         ident(r->tables[i].name, q, sizeof(q)));
		if (db_exec_sql(dst, sql, NULL, 0) != 0) {
			db_rollback(dst);
			return;
		}
	}
	db_commit(dst, NULL, 0);
}

/* Refuse a target that holds rows in any of the source's tables (err
 * names them).  0 empty, DB_COPY_NOT_EMPTY, -1 on error. */
static int check_empty(struct db *dst, struct db_copy_report *r, char *err,
                       size_t errlen)
{
	char list[512] = "";
	size_t used = 0;
	int full = 0;

	for (size_t i = 0; i < r->n; i++) {
		long long n = 0;
		if (table_rows(dst, r->tables[i].name, &n, err, errlen) < 0)
			return -1;
		if (n > 0 && used < sizeof(list))
			used += (size_t)snprintf(list + used,
			                         sizeof(list) - used,
			                         "%s%s (%lld row%s)",
			                         full ? ", " : "",
			                         r->tables[i].name, n,
			                         n == 1 ? "" : "s");
		full |= n > 0;
	}
	if (!full)
		return 0;
	seterr(err, errlen,
	       "the target is not empty: %s; migrate copies into an empty "
	       "database only (nothing was written)",
	       list);
	return DB_COPY_NOT_EMPTY;
}

/* The target opened, found empty and given the current schema. */
static int open_target(const char *target, struct db_copy_report *r,
                       struct db **dst, char *err, size_t errlen)
{
	int rc, v;

	if (db_open_raw(target, DB_CREATE, dst, err, errlen) != 0)
		return DB_COPY_TARGET;
	if ((v = db_version(*dst)) < 0)
		return seterr(err, errlen, "database %s: %s", target,
		              db_errmsg(*dst));
	if (v > DB_SCHEMA_VERSION) {
		seterr(err, errlen,
		       "the target has schema version %d, newer than this "
		       "program (%d); nothing was written",
		       v, DB_SCHEMA_VERSION);
		return DB_COPY_NOT_EMPTY;
	}
	if ((rc = check_empty(*dst, r, err, errlen)) != 0)
		return rc;
	/* the schema made by the normal migrations, as init makes it */
	return db_migrate_to(*dst, DB_SCHEMA_VERSION, err, errlen);
}

/* The audit chain of the copy against the source's: the same rows and
 * head.  0, or DB_COPY_MISMATCH / -1 with err filled. */
static int verify_chain(struct db *dst, struct db_copy_report *r, char *err,
                        size_t errlen)
{
	const struct db_audit_check *a = &r->src_audit, *b = &r->dst_audit;
	int rc = db_audit_verify(dst, 0, NULL, &r->dst_audit, err, errlen);

	if (rc < 0)
		return -1;
	if (rc == 0 && a->rows == b->rows && a->last_id == b->last_id &&
	    strcmp(a->last_hash, b->last_hash) == 0)
		return 0;
	if (rc == 1)
		seterr(err, errlen,
		       "the audit chain of the copy is broken at row %lld",
		       b->bad_id);
	else
		seterr(err, errlen,
		       "the audit chain of the copy ends at row %lld (%lld "
		       "rows, hash %s), the source's at row %lld (%lld rows, "
		       "hash %s)",
		       b->last_id, b->rows, b->last_hash, a->last_id, a->rows,
		       a->last_hash);
	return DB_COPY_MISMATCH;
}

int db_copy_to(struct db *src, const char *target, struct db_copy_report *r,
               char *err, size_t errlen)
{
	struct db *dst = NULL;
	int rc;

	memset(r, 0, sizeof(*r));
	if (db_is_pg(src))
		return seterr(err, errlen,
		              "the source is already a PostgreSQL database: "
		              "migrate copies an SQLite one");
	if (db_version(src) != DB_SCHEMA_VERSION)
		return seterr(err, errlen,
		              "the source has schema version %d, this program "
		              "needs %d (run \"smimectl init\" first)",
		              db_version(src), DB_SCHEMA_VERSION);
	if (read_catalogue(src, r, err, errlen) != 0)
		return -1;
	r->src_version = data_version(src);
	rc = db_audit_verify(src, 0, NULL, &r->src_audit, err, errlen);
	if (rc != 0) {
		if (rc == 1)
			seterr(err, errlen,
			       "the audit chain of the source is broken at "
			       "row %lld (see smimectl audit verify): not "
			       "copied",
			       r->src_audit.bad_id);
		return rc == 1 ? DB_COPY_SRC_BROKEN : -1;
	}
	if ((rc = open_target(target, r, &dst, err, errlen)) != 0) {
		db_close(dst);
		return rc;
	}
	rc = copy_all(src, dst, r, err, errlen);
	if (rc == 0 && (rc = verify_chain(dst, r, err, errlen)) != 0)
		clear_target(dst, r);
	db_close(dst);
	return rc;
}
