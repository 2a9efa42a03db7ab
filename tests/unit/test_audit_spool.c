/* Unit tests: the audit spool file (lib/audit_spool.c) -- the line format
 * and its escaping, torn and damaged lines, order -- and the audit queue
 * (lib/audit.c) with a spool while the database is locked: rows past
 * audit_queue_max go to the spool, a queue stopped in the outage spools
 * the rest, and once the database is back every row is written in the
 * order submitted, spooled ones first, on one chain. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "audit_spool.h"
#include "db.h"
#include "fixture.h"
#include "tap.h"

static int reports, errors, said_back, said_spooling, said_bad, said_nospool;

static void report(int is_error, const char *text)
{
	reports++;
	errors += is_error;
	said_back += strstr(text, "database back") != NULL;
	said_spooling += strstr(text, "spooling audit rows to") != NULL;
	said_bad += strstr(text, "not imported") != NULL;
	said_nospool += strstr(text, "cannot be written") != NULL;
	printf("# report: %s\n", text);
}

/* Rows read back, in order. */
struct got {
	struct audit_row r[64];
	size_t n;
};

static int keep(void *arg, const struct audit_row *r)
{
	struct got *g = arg;

	if (g->n < 64 && audit_spool_row_copy(&g->r[g->n], r) == 0)
		g->n++;
	return 0;
}

static void got_clear(struct got *g)
{
	for (size_t i = 0; i < g->n; i++)
		audit_spool_row_clear(&g->r[i]);
	g->n = 0;
}

static int same(const char *a, const char *b)
{
	return a && b ? strcmp(a, b) == 0 : a == b;
}

static int rows_equal(const struct audit_row *a, const struct audit_row *b)
{
	return a->at == b->at && same(a->queue_id, b->queue_id) &&
	       same(a->message_id, b->message_id) &&
	       same(a->from_addr, b->from_addr) && same(a->action, b->action) &&
	       same(a->cert_serial, b->cert_serial) &&
	       same(a->digest, b->digest) && same(a->result, b->result) &&
	       same(a->recipients, b->recipients) &&
	       same(a->cert_issuer, b->cert_issuer);
}

static void format_tests(void)
{
	struct audit_row r = {
		.at = 1767225600,
		.queue_id = "4Q\tx",
		.message_id = "<a\nb\r\n@c>",
		.from_addr = "w\\x@banjarkota.go.id",
		.action = "signed",
		.cert_serial = "", /* empty is not NULL */
		.digest = NULL,
		.result = "ok \x01\x7f",
		.recipients = "b\xc3\xbcro@example.org", /* UTF-8 */
		.cert_issuer = "CN=\xe5\xb8\x82, O=Kota",
	};
	struct audit_row back;
	const char *why = "";
	char *line = NULL, *p;
	size_t len = 0;
	int ascii = 1;

	ok(audit_spool_format(&r, &line, &len) == 0 && len > 0 &&
	           line[len - 1] == '\n',
	   "a row formats as one line ending in LF");
	for (size_t i = 0; line && i + 1 < len; i++)
		if ((unsigned char)line[i] > 0x7e ||
		    ((unsigned char)line[i] < 0x20 && line[i] != '\t'))
			ascii = 0;
	ok(ascii && memchr(line, '\n', len - 1) == NULL,
	   "the line is printable ASCII: newlines and non-ASCII escaped");
	ok(strncmp(line,
	           "A1\t1767225600\t4Q\\tx\t<a\\nb\\r\\n@c>\t"
	           "w\\\\x@banjarkota.go.id\tsigned\t\t\\N\t"
	           "ok \\x01\\x7f\tb\\xc3\\xbcro@example.org\t",
	           strlen("A1\t1767225600\t4Q\\tx\t<a\\nb\\r\\n@c>\t"
	                  "w\\\\x@banjarkota.go.id\tsigned\t\t\\N\t"
	                  "ok \\x01\\x7f\tb\\xc3\\xbcro@example.org\t")) == 0,
	   "version tag, tab, newline, backslash, NULL, control and UTF-8 "
	   "escapes as documented");
	ok(audit_spool_parse(line, len - 1, &back, &why) == 0,
	   "the line parses (%s)", why);
	ok(rows_equal(&r, &back),
	   "round trip: every field as it was, NULL and empty kept apart");
	audit_spool_row_clear(&back);
	audit_spool_row_clear(NULL);

	p = strstr(line, "signed");
	p[0] = 'S';
	ok(audit_spool_parse(line, len - 1, &back, &why) != 0 &&
	           strcmp(why, "checksum") == 0,
	   "one byte changed: refused for its checksum (%s)", why);
	p[0] = 's';
	ok(audit_spool_parse(line, len - 20, &back, &why) != 0,
	   "a line cut short is refused (%s)", why);
	free(line);

	/* a well-formed line of an unknown version (its check recomputed by
	 * formatting, then the tag changed and the check made right) */
	{
		const char *l2 = "A9\t1\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N"
		                 "\t\\N";
		unsigned h = 2166136261u;
		char buf[256];
		for (const char *c = l2; *c; c++)
			h = (h ^ (unsigned char)*c) * 16777619u;
		snprintf(buf, sizeof(buf), "%s\t%08x", l2, h);
		ok(audit_spool_parse(buf, strlen(buf), &back, &why) != 0 &&
		           strcmp(why, "version") == 0,
		   "an unknown version is refused (%s)", why);
		buf[1] = '1';
		ok(audit_spool_parse(buf, strlen(buf), &back, &why) != 0 &&
		           strcmp(why, "checksum") == 0,
		   "the version is covered by the checksum");
	}
}

static void file_tests(const char *dir)
{
	char path[256], bad[300], err[512], qid[16][8];
	struct audit_row rows[6];
	const struct audit_row *v[6];
	struct audit_spool_stats st;
	struct got g = { .n = 0 };
	int inorder = 1;
	FILE *f;

	snprintf(path, sizeof(path), "%s/a.spool", dir);
	snprintf(bad, sizeof(bad), "%s.bad", path);
	ok(audit_spool_read(path, keep, &g, &st, err, sizeof(err)) == 1,
	   "no spool file: nothing to read");
	ok(!audit_spool_exists(path), "and it does not exist");
	memset(rows, 0, sizeof(rows));
	for (int i = 0; i < 6; i++) {
		snprintf(qid[i], sizeof(qid[i]), "R%d", i);
		rows[i].at = 1000 + i;
		rows[i].queue_id = qid[i];
		rows[i].action = "signed";
		v[i] = &rows[i];
	}
	ok(audit_spool_append(path, v, 3, err, sizeof(err)) == 0,
	   "three rows appended (%s)", err);
	/* a crash in the middle of the next append */
	f = fopen(path, "a");
	fputs("A1\t1003\tR-torn\tsig", f);
	fclose(f);
	ok(audit_spool_append(path, v + 3, 3, err, sizeof(err)) == 0,
	   "three more after the torn write (%s)", err);
	ok(audit_spool_exists(path), "the spool exists");
	ok(audit_spool_read(path, keep, &g, &st, err, sizeof(err)) == 0,
	   "read (%s)", err);
	ok(g.n == 6 && st.rows == 6, "the six good rows are read (%zu)", g.n);
	for (size_t i = 0; i < g.n; i++)
		if (!same(g.r[i].queue_id, qid[i]) ||
		    g.r[i].at != 1000 + (int)i)
			inorder = 0;
	ok(inorder, "in the order they were appended");
	ok(st.bad == 1 && st.first_bad_line == 4,
	   "the torn write is one bad line, line 4 (%zu, %zu %s)", st.bad,
	   st.first_bad_line, st.first_bad_why);
	got_clear(&g);
	audit_spool_stats_clear(&st);

	/* torn as the last line: reported as torn, the rest read */
	f = fopen(path, "a");
	fputs("A1\t1006\tR6\tsi", f);
	fclose(f);
	ok(audit_spool_read(path, keep, &g, &st, err, sizeof(err)) == 0 &&
	           g.n == 6 && st.bad == 2,
	   "a torn last line: six rows, two bad lines (%zu, %zu)", g.n, st.bad);
	ok(st.bad_lines && strstr(st.bad_lines, "R6\tsi\n") &&
	           strstr(st.bad_lines, "R-torn"),
	   "the bad lines are kept for PATH.bad");
	ok(audit_spool_remove(path, &st, err, sizeof(err)) == 0 &&
	           !audit_spool_exists(path) && access(path, F_OK) != 0,
	   "remove: the spool is gone (%s)", err);
	ok(fixture_sh("grep -c . %s | grep -qx 2", bad) == 0,
	   "and PATH.bad holds the two bad lines");
	got_clear(&g);
	audit_spool_stats_clear(&st);
	audit_spool_stats_clear(NULL);
}

static int count_rows(const char *path)
{
	sqlite3 *h;
	sqlite3_stmt *st;
	int n = -1;

	sqlite3_open(path, &h);
	if (sqlite3_prepare_v2(h, "SELECT count(*) FROM audit", -1, &st,
	                       NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(h);
	return n;
}

/* The queue ids in id order, joined by commas, into out. */
static const char *order(const char *path, char *out, size_t outlen)
{
	sqlite3 *h;
	sqlite3_stmt *st;
	size_t len = 0;

	out[0] = '\0';
	sqlite3_open(path, &h);
	if (sqlite3_prepare_v2(h, "SELECT queue_id FROM audit ORDER BY id", -1,
	                       &st, NULL) == SQLITE_OK)
		while (sqlite3_step(st) == SQLITE_ROW && len + 16 < outlen)
			len += (size_t)snprintf(out + len, outlen - len, "%s%s",
			                        len ? "," : "",
			                        sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(h);
	return out;
}

static int verifies(const char *path, long long rows)
{
	struct db_audit_check c;
	struct db *db;
	char err[512];
	int rc = -1;

	if (db_open(path, DB_READONLY, &db, err, sizeof(err)) == 0) {
		rc = db_audit_verify(db, 0, NULL, &c, err, sizeof(err));
		db_close(db);
	}
	return rc == 0 && c.rows == rows;
}

/* Two checks: the log holds want and then Q<from>..Q<to> (appended to
 * want), in id order, and its chain verifies. */
static void in_order(const char *path, char *want, size_t wantlen, int from,
                     int to, const char *what)
{
	char ids[1024];

	for (int i = from; i <= to; i++)
		snprintf(want + strlen(want), wantlen - strlen(want), "%sQ%02d",
		         want[0] ? "," : "", i);
	is_str(order(path, ids, sizeof(ids)), want, "%s", what);
	ok(verifies(path, to), "the chain verifies (%d rows)", to);
}

static void submit_range(struct audit_queue *q, int from, int to)
{
	char qid[16];
	struct audit_row r;

	memset(&r, 0, sizeof(r));
	r.action = "signed";
	r.result = "ok";
	for (int i = from; i <= to; i++) {
		snprintf(qid, sizeof(qid), "Q%02d", i);
		r.queue_id = qid;
		r.message_id = "<m\t\n\xc3\xa9@x>"; /* escaped in the spool */
		audit_submit(q, &r);
	}
}

static int wait_for(struct audit_queue *q, const char *spool, int want_spool,
                    size_t max_pending, int tenths)
{
	for (int i = 0; i < tenths; i++) {
		if (audit_spool_exists(spool) == want_spool &&
		    audit_pending(q) <= max_pending)
			return 1;
		usleep(100000);
	}
	return 0;
}

static void queue_tests(const char *dir)
{
	char db_path[256], spool[256], err[512], want[1024];
	struct audit_options o = { 5, spool };
	struct audit_queue *q, *q2;
	struct db *db;
	sqlite3 *locker;
	FILE *f;

	snprintf(db_path, sizeof(db_path), "%s/q.db", dir);
	snprintf(spool, sizeof(spool), "%s/q.spool", dir);
	ok(db_open(db_path, DB_CREATE, &db, err, sizeof(err)) == 0, "db");
	db_close(db);

	/* an outage: 20 rows, 5 may wait in memory */
	sqlite3_open(db_path, &locker);
	sqlite3_exec(locker, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	q = audit_queue_open(db_path, &o, report, err, sizeof(err));
	ok(q != NULL, "a queue with a spool (%s)", q ? "ok" : err);
	submit_range(q, 1, 20);
	ok(wait_for(q, spool, 1, 5, 120),
	   "the database locked: the rows past audit_queue_max are spooled "
	   "(%zu in memory)",
	   audit_pending(q));
	submit_range(q, 21, 23);
	ok(audit_pending(q) == 3, "new rows wait in memory behind the spool");
	ok(count_rows(db_path) == 0, "nothing written yet");
	ok(said_spooling == 1, "\"spooling to\" said once (%d)", said_spooling);
	sqlite3_exec(locker, "COMMIT", NULL, NULL, NULL);
	ok(wait_for(q, spool, 0, 0, 100), "the lock gone: spool and memory "
	                                  "written");
	ok(count_rows(db_path) == 23, "23 rows (%d)", count_rows(db_path));
	want[0] = '\0';
	in_order(db_path, want, sizeof(want), 1, 23,
	         "in the order submitted, spooled ones first");
	ok(said_back == 1, "\"database back\" said once (%d)", said_back);

	/* stopped in an outage: the rest is spooled, a torn line added, and
	 * a new queue (a restart) writes the spool before its own rows */
	sqlite3_exec(locker, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	submit_range(q, 24, 26);
	audit_queue_free(q, 5000);
	ok(audit_spool_exists(spool),
	   "a queue stopped in the outage spools its rows");
	f = fopen(spool, "a");
	fputs("A1\t12\tQ-torn", f);
	fclose(f);
	q = audit_queue_open(db_path, &o, report, err, sizeof(err));
	ok(q != NULL, "a new queue with the spool left");
	submit_range(q, 27, 28);
	usleep(300000);
	ok(count_rows(db_path) == 23, "still locked: nothing written");
	sqlite3_exec(locker, "COMMIT", NULL, NULL, NULL);
	ok(wait_for(q, spool, 0, 0, 100), "the lock gone: written");
	ok(count_rows(db_path) == 28, "28 rows (%d)", count_rows(db_path));
	in_order(db_path, want, sizeof(want), 24, 28,
	         "the spool from before first, then the new rows");
	ok(said_bad == 1, "the torn line is reported once (%d)", said_bad);
	ok(fixture_sh("grep -q Q-torn %s.bad", spool) == 0,
	   "and kept in PATH.bad, not imported");

	/* the database file replaced (a reload): the old queue spools, the
	 * new one writes the spool before its own rows */
	audit_queue_retire(q);
	audit_queue_retire(NULL);
	submit_range(q, 29, 31);
	ok(wait_for(q, spool, 1, 0, 50) && count_rows(db_path) == 28,
	   "a retired queue puts its rows in the spool, not in its database");
	q2 = audit_queue_open(db_path, &o, report, err, sizeof(err));
	submit_range(q2, 32, 32);
	ok(q2 && wait_for(q2, spool, 0, 0, 50) && count_rows(db_path) == 32,
	   "the new queue writes them (%d rows)", count_rows(db_path));
	in_order(db_path, want, sizeof(want), 29, 32,
	         "the old queue's rows first, in order");
	audit_queue_free(q, 5000);
	audit_queue_free(q2, 5000);

	/* the spool cannot be written either: rows stay in memory, said once */
	o.queue_max = 2;
	o.spool = "/nonexistent-smime-dir/q.spool";
	sqlite3_exec(locker, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	q = audit_queue_open(db_path, &o, report, err, sizeof(err));
	submit_range(q, 33, 37);
	for (int i = 0; i < 100 && said_nospool == 0; i++)
		usleep(100000);
	ok(said_nospool == 1 && audit_pending(q) == 5,
	   "spool not writable: said once, all 5 rows kept in memory past "
	   "the bound (%zu)",
	   audit_pending(q));
	sqlite3_exec(locker, "COMMIT", NULL, NULL, NULL);
	for (int i = 0; i < 100 && audit_pending(q) > 0; i++)
		usleep(100000);
	ok(count_rows(db_path) == 37 && verifies(db_path, 37),
	   "and written once the database is back (%d)", count_rows(db_path));
	audit_queue_free(q, 5000);
	sqlite3_close(locker);
}

int main(void)
{
	const char *dir = fixture_dir("audit-spool");

	format_tests();
	file_tests(dir);
	queue_tests(dir);
	return fixture_end(tap_done());
}
