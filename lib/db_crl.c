/* db_crl -- the crl_sources table (schema 8): what each CRL URL gave the
 * last time smimectl crl fetch asked it (see db.h). */
#include "db_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct db_col source_cols[] = {
	DB_COL(DB_COL_TEXT, struct db_crl_source, url),
	DB_COL(DB_COL_TEXT, struct db_crl_source, issuer),
	DB_COL(DB_COL_TIME, struct db_crl_source, last_modified),
	DB_COL(DB_COL_TIME, struct db_crl_source, fetched_at),
	DB_COL(DB_COL_TIME, struct db_crl_source, checked_at),
	DB_COL(DB_COL_TIME, struct db_crl_source, this_update),
	DB_COL(DB_COL_TIME, struct db_crl_source, next_update),
	DB_COL(DB_COL_TEXT, struct db_crl_source, status),
	DB_COL(DB_COL_TEXT, struct db_crl_source, detail),
};
#define NSOURCE_COLS (sizeof(source_cols) / sizeof(source_cols[0]))

void db_crl_source_clear(struct db_crl_source *s)
{
	if (s != NULL)
		db_cols_free(source_cols, NSOURCE_COLS, s, sizeof(*s));
}

int db_crl_source_get(struct db *db, const char *url, struct db_crl_source *out,
                      char *err, size_t errlen)
{
	char cols[256], sql[512];
	struct db_q q;
	int found;

	memset(out, 0, sizeof(*out));
	snprintf(sql, sizeof(sql), "SELECT %s FROM crl_sources WHERE url = ?",
	         db_cols_list(source_cols, NSOURCE_COLS, "", cols,
	                      sizeof(cols)));
	if (db_q_open(&q, db, sql, DB_ARGS(DB_TEXT(url)), err, errlen) != 0)
		return -1;
	found = db_q_next(&q);
	if (found > 0)
		db_q_fill(&q, 0, source_cols, NSOURCE_COLS, out, 1);
	if (db_q_close(&q) != 0 || found < 0) {
		db_crl_source_clear(out);
		return -1;
	}
	return found;
}

int db_crl_source_put(struct db *db, const struct db_crl_source *s, char *err,
                      size_t errlen)
{
	return db_run(db,
	              "INSERT INTO crl_sources (url, issuer, last_modified,"
	              " fetched_at, checked_at, this_update, next_update,"
	              " status, detail) VALUES (?,?,?,?,?,?,?,?,?)"
	              " ON CONFLICT (url) DO UPDATE SET (issuer, last_modified,"
	              " fetched_at, checked_at, this_update, next_update,"
	              " status, detail) = (excluded.issuer,"
	              " excluded.last_modified, excluded.fetched_at,"
	              " excluded.checked_at, excluded.this_update,"
	              " excluded.next_update, excluded.status,"
	              " excluded.detail)",
	              DB_ARGS(DB_TEXT(s->url), DB_TEXT(s->issuer),
	                      DB_ID(s->last_modified), DB_ID(s->fetched_at),
	                      DB_INT(s->checked_at), DB_ID(s->this_update),
	                      DB_ID(s->next_update), DB_TEXT(s->status),
	                      DB_TEXT(s->detail)),
	              err, errlen);
}
