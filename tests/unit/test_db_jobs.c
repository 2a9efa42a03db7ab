/* Unit tests: run-once job locks and notices (lib/db.c db_job_lock,
 * db_notify, db_listen, db_wait_notify; issue 16).  A job's lock keeps a
 * second connection out until it is let go or its connection closes,
 * and other jobs go on beside it, on both backends (SQLite: an flock
 * beside the file; PostgreSQL: a session advisory lock).  On PostgreSQL a
 * notice reaches the listening connection once, in order, and only after
 * the sender's transaction commits; SQLite has none and says so.  Run on
 * PostgreSQL by tests/admin/pg.sh, with the same number of checks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "db.h"
#include "fixture.h"
#include "tap.h"

static char err[512];

static struct db *conn(const char *target)
{
	struct db *db;

	if (db_open(target, DB_CREATE, &db, err, sizeof(err)) != 0) {
		printf("# open %s: %s\n", target, err);
		return NULL;
	}
	return db;
}

/* db_job_lock's *got for job name on db, or -1 when it failed. */
static int take(struct db *db, const char *name)
{
	int got = 0;

	if (db == NULL || db_job_lock(db, name, &got, err, sizeof(err)) != 0)
		return -1;
	return got;
}

static long long ms_now(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void names(struct db *db)
{
	static const char long_name[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	                                "aaaaaaaaaaaaaaaaaaaaaaaa";
	int got = 7;

	ok(db_job_key("notify") == db_job_key("notify") &&
	           db_job_key("notify") != db_job_key("crl fetch") &&
	           db_job_key("notify") != db_job_key("notifz"),
	   "a job's key is the same each time and differs between jobs");
	ok(db_job_lock(db, "a;b", &got, err, sizeof(err)) == -1 && got == 0 &&
	           strstr(err, "bad job name"),
	   "a job name with ';' is refused (%s)", err);
	ok(db_job_lock(db, "", &got, err, sizeof(err)) == -1,
	   "... and an empty one");
	ok(strlen(long_name) == 65 &&
	           db_job_lock(db, long_name, &got, err, sizeof(err)) == -1,
	   "... and one of 65 bytes");
}

static void locks(const char *target)
{
	struct db *a = conn(target), *b = conn(target), *c;
	int st = 0;
	pid_t kid;

	ok(take(a, "notify") == 1, "connection A takes job notify (%s)",
	   a ? "ok" : err);
	ok(take(b, "notify") == 0,
	   "connection B does not get it while A holds it, without waiting");
	fflush(stdout);
	if ((kid = fork()) == 0) {
		struct db *k = conn(target);
		int got = take(k, "notify");
		db_close(k);
		_exit(got == 0 ? 0 : 1);
	}
	ok(kid > 0 && waitpid(kid, &st, 0) == kid && WIFEXITED(st) &&
	           WEXITSTATUS(st) == 0,
	   "... nor does another process");
	ok(take(b, "crl fetch") == 1, "B takes another job (crl fetch) beside it");
	db_job_unlock(a, "notify");
	c = conn(target);
	ok(take(c, "notify") == 1, "once A lets go, connection C gets notify");
	db_close(c); /* without letting go */
	c = conn(target);
	ok(take(c, "notify") == 1,
	   "C's connection closed without letting go: the next one gets it");
	db_job_unlock(c, "notify");
	db_close(c);
	db_job_unlock(b, "crl fetch");
	ok(take(a, "crl fetch") == 1, "and crl fetch, let go by B, to A");
	db_job_unlock(a, "crl fetch");
	db_job_unlock(NULL, "notify"); /* NULL is fine */
	db_close(a);
	db_close(b);
}

#define NOTICE_CHECKS 9

static void notices_sqlite(const char *target)
{
	struct db *db = conn(target);

	ok(db && !db_can_notify(db), "SQLite cannot send notices");
	ok(db_listen(db, "smime_t", err, sizeof(err)) == -1 &&
	           strstr(err, "need PostgreSQL"),
	   "... LISTEN says why (%s)", err);
	ok(db_notify(db, "smime_t", "x", err, sizeof(err)) == -1 &&
	           strstr(err, "need PostgreSQL"),
	   "... and so does NOTIFY");
	for (int i = 3; i < NOTICE_CHECKS; i++)
		ok(1, "# skip: notices are PostgreSQL's");
	db_close(db);
}

static void notices_pg(const char *target)
{
	struct db *l = conn(target), *n = conn(target);
	char buf[64];
	long long t0;
	int rc;

	ok(l && n && db_can_notify(l), "PostgreSQL can send notices");
	ok(db_listen(l, "Bad-Name", err, sizeof(err)) == -1 &&
	           strstr(err, "bad channel"),
	   "a channel name that is not a lower-case identifier is refused");
	ok(db_listen(l, "smime_t", err, sizeof(err)) == 0,
	   "connection L listens on smime_t (%s)", err);
	ok(db_notify(n, "smime_t", "one", err, sizeof(err)) == 0 &&
	           db_notify(n, "smime_t", "two", err, sizeof(err)) == 0,
	   "connection N notifies twice (%s)", err);
	buf[0] = '\0';
	rc = db_wait_notify(l, 3000, buf, sizeof(buf), err, sizeof(err));
	ok(rc == 1 && strcmp(buf, "one") == 0, "L gets the first (%d, %s)", rc,
	   buf);
	rc = db_wait_notify(l, 3000, buf, sizeof(buf), err, sizeof(err));
	ok(rc == 1 && strcmp(buf, "two") == 0, "... then the second (%s)", buf);
	t0 = ms_now();
	rc = db_wait_notify(l, 300, buf, sizeof(buf), err, sizeof(err));
	ok(rc == 0 && ms_now() - t0 < 3000,
	   "... and then none: the wait ends at its timeout (%d, %lld ms)", rc,
	   ms_now() - t0);
	ok(db_begin(n, err, sizeof(err)) == 0 &&
	           db_notify(n, "smime_t", "rolled", err, sizeof(err)) == 0 &&
	           (db_rollback(n), 1) &&
	           db_wait_notify(l, 300, buf, sizeof(buf), err,
	                          sizeof(err)) == 0,
	   "a notice in a transaction rolled back never comes");
	ok(db_begin(n, err, sizeof(err)) == 0 &&
	           db_notify(n, "smime_t", "committed", err, sizeof(err)) == 0 &&
	           db_wait_notify(l, 300, buf, sizeof(buf), err,
	                          sizeof(err)) == 0 &&
	           db_commit(n, err, sizeof(err)) == 0 &&
	           db_wait_notify(l, 3000, buf, sizeof(buf), err,
	                          sizeof(err)) == 1 &&
	           strcmp(buf, "committed") == 0,
	   "one in a committed transaction comes after the commit, not before");
	db_close(l);
	db_close(n);
}

int main(void)
{
	const char *target;

	fixture_dir("db_jobs");
	target = fixture_db("jobs");
	{
		struct db *db = conn(target);
		ok(db != NULL, "a fresh database (%s)", db ? "ok" : err);
		names(db);
		db_close(db);
	}
	locks(target);
	if (fixture_db_pg())
		notices_pg(target);
	else
		notices_sqlite(target);
	return fixture_end(tap_done());
}
