/* db_report -- read-only queries for the reports (see db.h). */
#include "db_int.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int db_query(struct db *db, const char *sql, const char *const *params,
             int nparams, db_row_fn fn, void *arg, char *err, size_t errlen)
{
	sqlite3_stmt *st = db_prep(db, sql, err, errlen);
	const char *cols[32];
	int rc, n;

	if (st == NULL)
		return -1;
	for (int i = 0; i < nparams; i++)
		db_bind_text(st, i + 1, params[i]);
	n = sqlite3_column_count(st);
	if (n > 32)
		n = 32;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		for (int i = 0; i < n; i++)
			cols[i] = (const char *)sqlite3_column_text(st, i);
		if (fn(arg, n, cols))
			break;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return seterr(err, errlen, "database: %s", db_errmsg(db));
	return 0;
}
