/* db_ocsp -- OCSP answers kept until their nextUpdate (schema 8) (see
 * db.h). */
#include "db_int.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

/* struct db_ocsp and the columns of ocsp_responses, in SELECT order. */
/* clang-format off */
#define C(t, f) DB_COL(t, struct db_ocsp, f)
static const struct db_col ocsp_cols[] = {
	C(DB_COL_TEXT, issuer), C(DB_COL_TEXT, serial), C(DB_COL_TEXT, status),
	C(DB_COL_TIME, revoked_at), C(DB_COL_TEXT, reason),
	C(DB_COL_TIME, this_update), C(DB_COL_TIME, next_update),
	C(DB_COL_TIME, checked_at), C(DB_COL_TEXT, responder),
};
#undef C
/* clang-format on */
#define NOCSP_COLS (sizeof(ocsp_cols) / sizeof(ocsp_cols[0]))

void db_ocsp_clear(struct db_ocsp *r)
{
	db_cols_free(ocsp_cols, NOCSP_COLS, r, sizeof(*r));
}

int db_ocsp_put(struct db *db, const struct db_ocsp *r, char *err,
                size_t errlen)
{
	static const char sql[] =
	        "INSERT INTO ocsp_responses (issuer, serial, status,"
	        " revoked_at, reason, this_update, next_update, checked_at,"
	        " responder) VALUES (?,upper(?),?,?,?,?,?,?,?)"
	        " ON CONFLICT (issuer, serial) DO UPDATE SET"
	        " status = excluded.status, revoked_at = excluded.revoked_at,"
	        " reason = excluded.reason,"
	        " this_update = excluded.this_update,"
	        " next_update = excluded.next_update,"
	        " checked_at = excluded.checked_at,"
	        " responder = excluded.responder";

	if (r == NULL || r->issuer == NULL || r->serial == NULL ||
	    r->status == NULL)
		return seterr(err, errlen,
		              "OCSP answer without issuer, serial or status");
	const struct db_val args[] = {
		DB_TEXT(r->issuer),    DB_TEXT(r->serial),
		DB_TEXT(r->status),    DB_ID(r->revoked_at),
		DB_TEXT(r->reason),    DB_INT(r->this_update),
		DB_ID(r->next_update), DB_INT(r->checked_at),
		DB_TEXT(r->responder),
	};
	return db_run(db, sql, args, (int)(sizeof(args) / sizeof(args[0])), err,
	              errlen);
}

/* The rows of ocsp_responses WHERE where (with args) to fn, text
 * borrowed (copied with dup).  0 or -1. */
static int ocsp_select(struct db *db, const char *where,
                       const struct db_val *args, int nargs, int dup,
                       db_ocsp_fn fn, void *arg, char *err, size_t errlen)
{
	char cols[256], sql[512];
	struct db_q q;

	db_cols_list(ocsp_cols, NOCSP_COLS, "", cols, sizeof(cols));
	snprintf(sql, sizeof(sql), "SELECT %s FROM ocsp_responses WHERE %s",
	         cols, where);
	if (db_q_open(&q, db, sql, args, nargs, err, errlen) != 0)
		return -1;
	while (db_q_next(&q) > 0) {
		struct db_ocsp row;
		db_q_fill(&q, 0, ocsp_cols, NOCSP_COLS, &row, dup);
		if (fn(arg, &row) != 0)
			break;
	}
	return db_q_close(&q);
}

int db_ocsp_current(struct db *db, time_t now, time_t max_age, db_ocsp_fn fn,
                    void *arg, char *err, size_t errlen)
{
	return ocsp_select(db,
	                   "next_update > ? OR (next_update IS NULL AND"
	                   " checked_at > ?)",
	                   DB_ARGS(DB_INT(now), DB_INT(now - max_age)), 0, fn,
	                   arg, err, errlen);
}

/* Keep the first row (a copy) in arg. */
static int keep_row(void *arg, const struct db_ocsp *r)
{
	*(struct db_ocsp *)arg = *r;
	return 1;
}

int db_ocsp_get(struct db *db, const char *issuer, const char *serial,
                struct db_ocsp *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (ocsp_select(db, "issuer = ? AND serial = upper(?)",
	                DB_ARGS(DB_TEXT(issuer), DB_TEXT(serial)), 1, keep_row,
	                out, err, errlen) != 0) {
		db_ocsp_clear(out);
		return -1;
	}
	return out->status != NULL;
}
