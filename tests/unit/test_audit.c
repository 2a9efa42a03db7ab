/* Unit tests: the batched audit writer (lib/audit.c), including a database
 * locked by another writer (rows wait in memory, then land), and the audit
 * hash chain (lib/db_audit.c, schema 5): known-answer hashes, tampering of
 * every kind found at the right row, migration of a schema 4 log, and two
 * processes appending to one chain. */
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "db.h"
#include "db_int.h"
#include "fixture.h"
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
	char sql[256];

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM audit %s", where);
	return (int)fixture_db_int(path, sql);
}

static int sql(const char *path, const char *text)
{
	return fixture_db_exec(path, text);
}

/* verify path: returns db_audit_verify's result, *c filled */
static int verify(const char *path, struct db_audit_check *c)
{
	struct db *db;
	char err[512];
	int rc;

	if (db_open(path, DB_READONLY, &db, err, sizeof(err)) != 0) {
		printf("# open: %s\n", err);
		return -1;
	}
	rc = db_audit_verify(db, 0, NULL, c, err, sizeof(err));
	if (rc < 0)
		printf("# verify: %s\n", err);
	db_close(db);
	return rc;
}

/* a fresh database at path with n rows written through db_audit_add */
static int fresh(const char *path, int n)
{
	struct db *db;
	struct audit_row r;
	char err[512], qid[32];

	fixture_db_reset(path);
	if (db_open(path, DB_CREATE, &db, err, sizeof(err)) != 0)
		return -1;
	memset(&r, 0, sizeof(r));
	r.action = "signed";
	r.result = "ok";
	for (int i = 1; i <= n; i++) {
		snprintf(qid, sizeof(qid), "Q%d", i);
		r.at = 1700000000 + i;
		r.queue_id = qid;
		r.from_addr = "andi@banjarkota.go.id";
		if (db_audit_add(db, &r, err, sizeof(err)) != 0) {
			db_close(db);
			return -1;
		}
	}
	db_close(db);
	return 0;
}

/* Changes made to a fresh chain of rows rows, and the row verification
 * must name (prev_id, problem: -1 when not checked). */
static const struct tamper_case {
	int rows;
	const char *sql;
	long long bad_id, prev_id;
	int problem;
	const char *what;
} tampers[] = {
	{ 5, "UPDATE audit SET digest = '' WHERE id = 2", 2, -1,
	  DB_AUDIT_CHANGED, "NULL -> '' is a change" },
	{ 5, "UPDATE audit SET at = at - 1 WHERE id = 3", 3, -1,
	  DB_AUDIT_CHANGED, "at changed: row 3" },
	{ 10, "DELETE FROM audit WHERE id = 5", 6, 4, DB_AUDIT_LINK,
	  "DELETE of row 5: row 6, link to row 4 broken" },
	{ 3, "DELETE FROM audit WHERE id = 1", 2, 0, DB_AUDIT_LINK,
	  "DELETE of row 1: row 2 is not the start" },
	{ 5,
	  "INSERT INTO audit (at, queue_id, action, result) "
	  "VALUES (1700000100, 'FORGED', 'signed', 'ok')",
	  6, -1, DB_AUDIT_HASH_MISSING,
	  "forged row without hash: row 6, hash missing" },
	{ 6,
	  "UPDATE audit SET id = -3 WHERE id = 3;"
	  "UPDATE audit SET id = 3 WHERE id = 4;"
	  "UPDATE audit SET id = 4 WHERE id = -3",
	  3, -1, -1, "rows 3 and 4 swapped: row 3" },
	{ 6,
	  "UPDATE audit SET queue_id = CASE id WHEN 3 THEN 'Q4' "
	  "ELSE 'Q3' END, at = CASE id WHEN 3 THEN 1700000004 ELSE "
	  "1700000003 END WHERE id IN (3, 4)",
	  3, -1, DB_AUDIT_CHANGED,
	  "contents of rows 3 and 4 swapped (ids and hashes kept): row 3" },
	{ 4, "UPDATE audit SET hash = NULL WHERE id = 2", 2, -1,
	  DB_AUDIT_HASH_MISSING, "hash set NULL: row 2, hash missing" },
};

/* a fresh database at path with n rows, changed by the SQL text, then
 * verified: returns verify's result, *c filled */
static int tamper(const char *path, int n, const char *text,
                  struct db_audit_check *c)
{
	fresh(path, n);
	sql(path, text);
	return verify(path, c);
}

static char *one(const char *path, const char *text)
{
	return fixture_db_text(path, text);
}

#define AUDIT_ALL                                                       \
	"id, at, queue_id, message_id, from_addr, action, cert_serial," \
	" digest, result, recipients, cert_issuer, prev_hash, hash"

/* Copy the audit rows of from with id >= first into to, as they are. */
static int copy_rows(const char *from, const char *to, long long first)
{
	struct db *src = NULL, *dst = NULL;
	char err[512] = "";
	struct db_q q;
	int rc = -1;

	if (db_open_raw(from, DB_READONLY, &src, err, sizeof(err)) == 0 &&
	    db_open_raw(to, DB_READWRITE, &dst, err, sizeof(err)) == 0 &&
	    db_q_open(&q, src,
	              "SELECT " AUDIT_ALL
	              " FROM audit WHERE id >= ? ORDER BY id",
	              DB_ARGS(DB_INT(first)), err, sizeof(err)) == 0) {
		rc = 0;
		while (rc == 0 && db_q_next(&q) > 0) {
			struct db_val v[13];
			v[0] = DB_INT(db_q_int(&q, 0));
			v[1] = DB_INT(db_q_int(&q, 1));
			for (int i = 2; i < 13; i++)
				v[i] = DB_TEXT(db_q_text(&q, i));
			rc = db_run(dst,
			            "INSERT INTO audit (" AUDIT_ALL ") VALUES"
			            " (?,?,?,?,?,?,?,?,?,?,?,?,?)",
			            v, 13, err, sizeof(err));
		}
		if (db_q_close(&q) != 0)
			rc = -1;
	}
	if (rc != 0)
		printf("# copy_rows: %s\n", err);
	db_close(src);
	db_close(dst);
	return rc;
}

static void chain_tests(const char *dir)
{
	char path[256], err[512], *v;
	struct db *db;
	struct audit_row r;
	struct db_audit_check c;

	/* known answers: the hash definition of smimectl(8), computed
	 * independently with Python's hashlib */
	snprintf(path, sizeof(path), "%s", fixture_db("kat.db"));
	ok(db_open(path, DB_CREATE, &db, err, sizeof(err)) == 0, "kat db");
	memset(&r, 0, sizeof(r));
	r.at = 1700000000;
	r.queue_id = "Q1";
	r.message_id = "<a@b>";
	r.from_addr = "andi@banjarkota.go.id";
	r.action = "signed";
	r.digest = "sha256";
	r.result = "ok";
	ok(db_audit_add(db, &r, err, sizeof(err)) == 0, "row 1 added");
	memset(&r, 0, sizeof(r));
	r.at = 1700000001;
	r.queue_id = "";
	r.action = "passed";
	r.result = "";
	ok(db_audit_add(db, &r, err, sizeof(err)) == 0, "row 2 added");
	db_close(db);
	v = one(path, "SELECT prev_hash FROM audit WHERE id = 1");
	is_str(v,
	       "000000000000000000000000000000000000000000000000000000000000000"
	       "0",
	       "the first row's prev_hash is 64 zeros");
	free(v);
	v = one(path, "SELECT hash FROM audit WHERE id = 1");
	is_str(v,
	       "708737dcdea6632054a3a61a8625662f166de4a23ac3332f1b0cc6020d56d8a"
	       "1",
	       "row 1 hash is the documented SHA-256");
	free(v);
	v = one(path, "SELECT hash FROM audit WHERE id = 2");
	is_str(v,
	       "f9b0232359c4b9b5e814368d2971249123755db6d63e5e09a945cfd67dc1133"
	       "5",
	       "row 2 hash chains on row 1 (empty text and NULL differ)");
	free(v);

	/* fresh chain */
	snprintf(path, sizeof(path), "%s", fixture_db("chain.db"));
	ok(fresh(path, 10) == 0, "10 rows written");
	ok(verify(path, &c) == 0 && c.rows == 10 && c.last_id == 10,
	   "a fresh chain verifies (%lld rows)", c.rows);
	v = one(path, "SELECT hash FROM audit WHERE id = 10");
	is_str(c.last_hash, v, "last hash is row 10's");
	free(v);

	/* anchors: the right hash, a wrong one, a row beyond the end */
	{
		struct db *vd;
		char *h5 = one(path, "SELECT hash FROM audit WHERE id = 5");
		char other[65];
		db_open(path, DB_READONLY, &vd, err, sizeof(err));
		ok(db_audit_verify(vd, 5, h5, &c, err, sizeof(err)) == 0,
		   "anchor 5 with its hash: OK");
		snprintf(other, sizeof(other), "%s", h5 ? h5 : "");
		other[0] = other[0] == '0' ? '1' : '0';
		ok(db_audit_verify(vd, 5, other, &c, err, sizeof(err)) == 1 &&
		           c.bad_id == 5 &&
		           c.problem == DB_AUDIT_ANCHOR_CHANGED,
		   "anchor 5 with another hash: row 5 (%lld, %d)", c.bad_id,
		   (int)c.problem);
		ok(db_audit_verify(vd, 11, h5, &c, err, sizeof(err)) == 1 &&
		           c.bad_id == 11 &&
		           c.problem == DB_AUDIT_ANCHOR_MISSING &&
		           c.prev_id == 10,
		   "anchor 11 past the end: missing (%lld, %d)", c.bad_id,
		   (int)c.problem);
		db_close(vd);
		free(h5);
	}

	/* one column changed */
	sql(path, "UPDATE audit SET from_addr = 'mallory@banjarkota.go.id' "
	          "WHERE id = 4");
	ok(verify(path, &c) == 1 && c.bad_id == 4 &&
	           c.problem == DB_AUDIT_CHANGED && c.rows == 3,
	   "UPDATE of row 4's from_addr: row 4, content changed (%lld, %d)",
	   c.bad_id, (int)c.problem);
	for (size_t i = 0; i < sizeof(tampers) / sizeof(tampers[0]); i++) {
		const struct tamper_case *t = &tampers[i];
		ok(tamper(path, t->rows, t->sql, &c) == 1 &&
		           c.bad_id == t->bad_id &&
		           (t->prev_id < 0 || c.prev_id == t->prev_id) &&
		           (t->problem < 0 || (int)c.problem == t->problem),
		   "%s (%lld, %d)", t->what, c.bad_id, (int)c.problem);
	}
	/* a forged row in a gap, hashed correctly on its predecessor: the
	 * row after it no longer links */
	fresh(path, 6);
	{
		/* rebuild: rows 1-2 honest, a forged row 3 hashed on row 2
		 * with db_audit_add (so its own hash is right), then the
		 * original rows 4-6 copied back */
		char other[300];
		snprintf(other, sizeof(other), "%s", fixture_db("orig.db"));
		fresh(other, 6);
		sql(path, "DELETE FROM audit WHERE id >= 3");
		db_open(path, DB_READWRITE, &db, err, sizeof(err));
		/* PostgreSQL's ids come from a sequence (schema 9): the
		 * forger sets it back to 3, as one would */
		db_audit_id_sync(db, err, sizeof(err));
		memset(&r, 0, sizeof(r));
		r.at = 1700000003;
		r.queue_id = "FORGED";
		r.action = "signed";
		r.result = "ok";
		db_audit_add(db, &r, err, sizeof(err));
		db_close(db);
		copy_rows(other, path, 4);
	}
	ok(verify(path, &c) == 1 && c.bad_id == 4 && c.prev_id == 3 &&
	           c.problem == DB_AUDIT_LINK,
	   "forged row 3 with a correct own hash: row 4 names it (%lld, %d)",
	   c.bad_id, (int)c.problem);

	/* migration of a schema 4 database with rows: chained in id order */
	fresh(path, 0);
	sql(path, "DROP TABLE crl_sources; DROP TABLE ocsp_responses;"
	          "DROP INDEX audit_node_id;"
	          "ALTER TABLE audit DROP COLUMN node;"
	          "ALTER TABLE audit_anchors DROP COLUMN node;"
	          "ALTER TABLE audit DROP COLUMN cert_issuer;"
	          "ALTER TABLE audit DROP COLUMN recipients;"
	          "ALTER TABLE audit DROP COLUMN hash;"
	          "ALTER TABLE audit DROP COLUMN prev_hash;"
	          "INSERT INTO audit (id, at, queue_id, message_id, from_addr,"
	          " action, result) VALUES"
	          " (1, 1600000000, 'A1', '<1@x>', 'a@banjarkota.go.id',"
	          "  'signed', 'ok'),"
	          " (2, 1600000001, NULL, NULL, NULL, 'passed', NULL),"
	          " (7, 1600000002, 'A7', '<7@x>', 'b@banjarkota.go.id',"
	          "  'unsigned', 'no certificate')");
	fixture_db_set_version(path, 4);
	ok(db_open(path, DB_READWRITE, &db, err, sizeof(err)) != 0 &&
	           strstr(err, "schema version 4"),
	   "a schema 4 database is refused until migrated");
	ok(db_open(path, DB_CREATE, &db, err, sizeof(err)) == 0 &&
	           db_version(db) == DB_SCHEMA_VERSION,
	   "schema 4 -> %d (5 chains the rows, 6 adds the inbound columns)",
	   DB_SCHEMA_VERSION);
	memset(&r, 0, sizeof(r));
	r.at = 1700000000;
	r.action = "signed";
	r.result = "ok";
	ok(db_audit_add(db, &r, err, sizeof(err)) == 0, "a row after it");
	db_close(db);
	ok(verify(path, &c) == 0 && c.rows == 4 && c.last_id == 8,
	   "the migrated log verifies, new row 8 chained on (%lld rows, "
	   "last %lld)",
	   c.rows, c.last_id);
	v = one(path, fixture_db_pg()
	                      ? "SELECT string_agg(id || ':' || coalesce("
	                        "queue_id, '-'), ',' ORDER BY id) FROM audit"
	                      : "SELECT group_concat(id || ':' || coalesce("
	                        "queue_id, '-'), ',') FROM audit");
	is_str(v, "1:A1,2:-,7:A7,8:-", "old rows kept as they were");
	free(v);
	sql(path, "UPDATE audit SET result = 'ok' WHERE id = 7");
	ok(verify(path, &c) == 1 && c.bad_id == 7,
	   "a migrated row changed later is found (%lld)", c.bad_id);
}

/* An inbound row (v2 hash: recipients and issuer). */
static struct audit_row inbound_row(void)
{
	struct audit_row r = { .at = 1700000100,
		               .queue_id = "IN1",
		               .from_addr = "mitra@partner.go.id",
		               .action = "verified",
		               .cert_serial = "1005",
		               .result = "pass",
		               .recipients = "andi@banjarkota.go.id, "
		                             "budi@banjarkota.go.id",
		               .cert_issuer = "CN=BSrE" };
	return r;
}

/* Row n + 1 of path: inbound_row. */
static int add_inbound(const char *path)
{
	struct audit_row r = inbound_row();
	char err[512];
	struct db *db;
	int rc = -1;

	if (db_open(path, DB_READWRITE, &db, err, sizeof(err)) == 0) {
		rc = db_audit_add(db, &r, err, sizeof(err));
		db_close(db);
	}
	return rc;
}

/* Write a chain on from, copy its rows as they are into an empty to, and
 * verify there: 1 when it verifies whole, with the same last hash. */
static int moves(const char *from, const char *to)
{
	struct db_audit_check a, b;

	return fresh(from, 5) == 0 && add_inbound(from) == 0 &&
	       verify(from, &a) == 0 && fresh(to, 0) == 0 &&
	       copy_rows(from, to, 1) == 0 && verify(to, &b) == 0 &&
	       b.rows == 6 && strcmp(a.last_hash, b.last_hash) == 0;
}

/* A chain written through one backend verifies on the other: an SQLite
 * file and the database under test (PostgreSQL when the tests run there,
 * else a second SQLite file), both ways. */
static void across(void)
{
	char lite[512], other[512];
	const char *name = fixture_db_pg() ? "PostgreSQL" : "SQLite";

	snprintf(lite, sizeof(lite), "%s", fixture_path("lite.db"));
	snprintf(other, sizeof(other), "%s", fixture_db("across.db"));
	ok(moves(lite, other), "a chain written on SQLite verifies on %s",
	   name);
	ok(moves(other, lite), "a chain written on %s verifies on SQLite",
	   name);
}

/* two processes, each with its own audit queue (its own connection),
 * append to one database at once: one chain */
static void concurrent(const char *dir)
{
	char path[256], err[512];
	struct db *db;
	struct db_audit_check c;
	pid_t kids[2];
	int st, good = 1;

	snprintf(path, sizeof(path), "%s", fixture_db("conc.db"));
	ok(db_open(path, DB_CREATE, &db, err, sizeof(err)) == 0, "conc db");
	db_close(db);
	for (int k = 0; k < 2; k++) {
		kids[k] = fork();
		if (kids[k] == 0) {
			struct audit_queue *q =
			        audit_queue_new(path, NULL, err, sizeof(err));
			struct audit_row r;
			char qid[32];
			if (q == NULL)
				_exit(1);
			memset(&r, 0, sizeof(r));
			r.action = "signed";
			r.result = "ok";
			for (int i = 0; i < 3000; i++) {
				snprintf(qid, sizeof(qid), "P%d-%d", k, i);
				r.queue_id = qid;
				audit_submit(q, &r);
				if (i % 300 == 0)
					usleep(20000); /* interleave batches */
			}
			audit_queue_free(q, 20000);
			_exit(0);
		}
	}
	/* and this process writes single rows (smimectl-style) meanwhile */
	if (db_open(path, DB_READWRITE, &db, err, sizeof(err)) == 0) {
		struct audit_row r;
		memset(&r, 0, sizeof(r));
		r.action = "admin";
		for (int i = 0; i < 50; i++) {
			if (db_audit_add(db, &r, err, sizeof(err)) != 0) {
				printf("# single: %s\n", err);
				good = 0;
			}
			usleep(2000);
		}
		db_close(db);
	}
	for (int k = 0; k < 2; k++)
		if (waitpid(kids[k], &st, 0) != kids[k] || !WIFEXITED(st) ||
		    WEXITSTATUS(st) != 0)
			good = 0;
	ok(good, "two writer processes and single rows finished");
	ok(count_rows(path, "") == 6050, "6050 rows (%d)",
	   count_rows(path, ""));
	ok(count_rows(path, "WHERE queue_id LIKE 'P0-%'") == 3000 &&
	           count_rows(path, "WHERE queue_id LIKE 'P1-%'") == 3000,
	   "both processes' rows are there");
	ok(verify(path, &c) == 0 && c.rows == 6050,
	   "one chain: it verifies (%lld rows, broken at %lld)", c.rows,
	   c.bad_id);
	ok(count_rows(path, "a WHERE (SELECT count(*) FROM audit b WHERE "
	                    "b.prev_hash = a.hash) > 1") == 0,
	   "no fork: no hash is the prev_hash of two rows");
}

/* Octets that are not UTF-8 (a From address off the network): the row is
 * written, not refused (PostgreSQL refuses such text, and a refused row
 * would hold up every row behind it in the queue), with \xHH in their
 * place, and the chain verifies. */
static void not_utf8(void)
{
	const char *path = fixture_db("utf8");
	struct audit_row r = inbound_row();
	struct audit_queue *q;
	char err[512] = "";
	struct db *db;
	char *got;

	r.from_addr = "\xff\xfe@mitra.example";
	r.result = "Dinas \xe2\x80\x94 \xc0\xaf";
	r.cert_issuer = "CN=Caf\xe9";

	ok(db_open(path, DB_CREATE, &db, err, sizeof(err)) == 0 &&
	           db_audit_add(db, &r, err, sizeof(err)) == 0,
	   "a row with octets that are not UTF-8 is written (%s)", err);
	db_close(db);
	got = fixture_db_text(path, "SELECT from_addr || ' ' || result || ' ' "
	                            "|| cert_issuer FROM audit");
	is_str(got, "\\xFF\\xFE@mitra.example Dinas \xe2\x80\x94 \\xC0\\xAF "
	            "CN=Caf\\xE9",
	       "... with \\xHH for them, valid UTF-8 kept");
	free(got);
	q = audit_queue_new(path, report, err, sizeof(err));
	r.queue_id = "U2";
	audit_submit(q, &r);
	r.queue_id = "U3";
	r.from_addr = "andi@banjarkota.go.id";
	audit_submit(q, &r);
	audit_queue_free(q, 5000);
	ok(count_rows(path, "") == 3,
	   "through the queue too, and the row behind it is not held up "
	   "(%d rows)", count_rows(path, ""));
	ok(verify(path, &(struct db_audit_check){ 0 }) == 0,
	   "... and the chain verifies");
}

int main(void)
{
	const char *dir = fixture_dir("audit");
	char path[256], err[512];
	struct db *db;
	struct audit_queue *q;
	struct audit_row r;
	struct db *locker = NULL;
	int i;

	snprintf(path, sizeof(path), "%s", fixture_db("db"));
	ok(db_open(path, DB_CREATE, &db, err, sizeof(err)) == 0,
	   "database created");
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
	if (db_open_raw(path, DB_READWRITE, &locker, err, sizeof(err)) != 0 ||
	    db_begin(locker, err, sizeof(err)) != 0 ||
	    (db_is_pg(locker) &&
	     db_exec_sql(locker, "LOCK TABLE audit IN EXCLUSIVE MODE", err,
	                 sizeof(err)) != 0))
		printf("# locker: %s\n", err);
	q = audit_queue_new(path, report, err, sizeof(err));
	for (i = 0; i < 10; i++)
		audit_submit(q, &r);
	usleep(200000);
	ok(audit_pending(q) == 10, "rows wait while the database is locked");
	sleep(6); /* longer than the busy timeout: the writer reports once */
	ok(errors == 1, "one error report while locked (%d)", errors);
	db_commit(locker, err, sizeof(err));
	db_close(locker);
	for (i = 0; i < 40 && audit_pending(q) > 0; i++)
		usleep(100000);
	ok(audit_pending(q) == 0, "rows written once the lock is gone");
	ok(reports == 2, "recovery is reported once (%d reports)", reports);
	audit_queue_free(q, 5000);
	ok(count_rows(path, "") == 1010, "1010 rows in all");
	audit_queue_free(NULL, 0);
	ok(verify(path, &(struct db_audit_check){ 0 }) == 0,
	   "the queue's 1010 rows form one chain");

	chain_tests(dir);
	across();
	concurrent(dir);
	not_utf8();

	if (fixture_cleanup() != 0)
		return 1;
	return tap_done();
}
