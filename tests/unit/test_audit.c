/* Unit tests: the batched audit writer (lib/audit.c), including a database
 * locked by another writer (rows wait in memory, then land). */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "db.h"
#include "tap.h"

static int reports, errors;

static void report(int is_error, const char *text)
{
	reports++;
	errors += is_error;
	printf("# report: %s\n", text);
}

static int count_rows(const char *path, const char *where)
{
	sqlite3 *h;
	sqlite3_stmt *st;
	char sql[256];
	int n = -1;

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM audit %s", where);
	sqlite3_open(path, &h);
	if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(h);
	return n;
}

int main(void)
{
	char dir[] = "/tmp/smime-test-audit.XXXXXX", path[256], err[512];
	struct db *db;
	struct audit_queue *q;
	struct audit_row r;
	sqlite3 *locker;
	int i;

	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(path, sizeof(path), "%s/db", dir);
	ok(db_open(path, DB_CREATE, &db, err, sizeof(err)) == 0, "database created");
	db_close(db);

	q = audit_queue_new(path, report, err, sizeof(err));
	ok(q != NULL, "audit queue starts (%s)", q ? "ok" : err);
	memset(&r, 0, sizeof(r));
	r.action = "signed";
	r.queue_id = "Q1";
	r.from_addr = "andi@banjarkota.go.id'; DROP TABLE audit; --";
	r.message_id = "<x'\"@y>";
	r.result = "ok";
	for (i = 0; i < 1000; i++)
		audit_submit(q, &r);
	audit_queue_free(q, 5000);
	ok(count_rows(path, "") == 1000, "1000 rows written (%d)",
	   count_rows(path, ""));
	ok(count_rows(path, "WHERE from_addr LIKE '%DROP TABLE%'") == 1000,
	   "SQL metacharacters stored as data");

	/* another connection holds the write lock: rows wait, nothing is lost */
	sqlite3_open(path, &locker);
	sqlite3_exec(locker, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	q = audit_queue_new(path, report, err, sizeof(err));
	for (i = 0; i < 10; i++)
		audit_submit(q, &r);
	usleep(200000);
	ok(audit_pending(q) == 10, "rows wait while the database is locked");
	sleep(6); /* longer than the busy timeout: the writer reports once */
	ok(errors == 1, "one error report while locked (%d)", errors);
	sqlite3_exec(locker, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(locker);
	for (i = 0; i < 40 && audit_pending(q) > 0; i++)
		usleep(100000);
	ok(audit_pending(q) == 0, "rows written once the lock is gone");
	ok(reports == 2, "recovery is reported once (%d reports)", reports);
	audit_queue_free(q, 5000);
	ok(count_rows(path, "") == 1010, "1010 rows in all");
	audit_queue_free(NULL, 0);
	snprintf(err, sizeof(err), "rm -rf %s", dir);
	if (system(err) != 0)
		return 1;
	return tap_done();
}
