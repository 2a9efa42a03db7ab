/* Unit tests: one audit hash chain per node (lib/db_audit.c, schema 9,
 * issue 16): two nodes interleaving rows, each chain verifying on its own;
 * a row moved to another node's chain found; rows written before schema 9
 * verifying unchanged as the chain of node ""; two processes of two nodes
 * writing at once; and, on PostgreSQL, a node's writer never waiting for
 * another node's open transaction. */
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "db_int.h"
#include "fixture.h"
#include "metrics.h"
#include "tap.h"

/* A connection to path for node (NULL: none named), or NULL. */
static struct db *open_node(const char *path, const char *node)
{
	struct db *db;
	char err[512];

	if (db_open(path, DB_CREATE, &db, err, sizeof(err)) != 0 ||
	    db_set_node(db, node, err, sizeof(err)) != 0) {
		printf("# open %s: %s\n", node ? node : "(none)", err);
		return NULL;
	}
	return db;
}

/* One row for db's node; queue id qid.  0 or -1. */
static int add(struct db *db, const char *qid)
{
	struct audit_row r = { .at = 1700000000,
		               .queue_id = qid,
		               .from_addr = "andi@banjarkota.go.id",
		               .action = "signed",
		               .result = "ok" };
	char err[512];

	if (db_audit_add(db, &r, err, sizeof(err)) != 0) {
		printf("# add %s: %s\n", qid, err);
		return -1;
	}
	return 0;
}

/* db_audit_verify_node of node on path: its result, *c filled. */
static int verify_node(const char *path, const char *node,
                       struct db_audit_check *c)
{
	struct db *db = open_node(path, NULL);
	char err[512];
	int rc;

	if (db == NULL)
		return -1;
	rc = db_audit_verify_node(db, node, 0, NULL, c, err, sizeof(err));
	if (rc < 0)
		printf("# verify %s: %s\n", node, err);
	db_close(db);
	return rc;
}

static long long qint(const char *path, const char *fmt, const char *arg)
{
	char sql[512];

	snprintf(sql, sizeof(sql), fmt, arg);
	return fixture_db_int(path, sql);
}

/* Two nodes writing in turn: two chains, each verifying alone. */
static void interleaved(const char *path)
{
	static const char *const order = "ABAABBA";
	struct db *a = open_node(path, "mx1"), *b = open_node(path, "mx2");
	struct db_audit_check c;
	char **nodes = NULL, err[512] = "", qid[16], *t;
	size_t n = 0;
	int bad = 0;

	for (int i = 0; order[i] && a && b; i++) {
		snprintf(qid, sizeof(qid), "%c%d", order[i], i);
		bad |= add(order[i] == 'A' ? a : b, qid);
	}
	ok(a && b && bad == 0, "7 rows written by two nodes in turn");
	ok(db_audit_nodes(a, &nodes, &n, err, sizeof(err)) == 0 && n == 2 &&
	           strcmp(nodes[0], "mx1") == 0 && strcmp(nodes[1], "mx2") == 0,
	   "db_audit_nodes: mx1, mx2 (%zu)", n);
	db_audit_nodes_free(nodes, n);
	db_close(a);
	db_close(b);
	ok(verify_node(path, "mx1", &c) == 0 && c.rows == 4 && c.last_id == 7 &&
	           strcmp(c.node, "mx1") == 0,
	   "node mx1: 4 rows verify, head row 7 (%lld, %lld)", c.rows,
	   c.last_id);
	ok(verify_node(path, "mx2", &c) == 0 && c.rows == 3 && c.last_id == 6,
	   "node mx2: 3 rows verify, head row 6 (%lld, %lld)", c.rows,
	   c.last_id);
	t = fixture_db_text(path, "SELECT prev_hash = (SELECT hash FROM audit"
	                          " WHERE id = 1) FROM audit WHERE id = 3");
	ok(t && (strcmp(t, "1") == 0 || strcmp(t, "t") == 0),
	   "row 3 (mx1) chains to row 1 (mx1), not to row 2 (mx2)");
	free(t);
	ok(qint(path,
	        "SELECT count(*) FROM audit WHERE node = '%s' AND prev_hash ="
	        " '0000000000000000000000000000000000000000000000000000000000"
	        "000000'",
	        "mx2") == 1,
	   "node mx2's chain starts at zeros of its own");
	ok(verify_node(path, "", &c) == 0 && c.rows == 0,
	   "node \"\" has no rows (%lld)", c.rows);
	{
		struct db *db = open_node(path, NULL);
		int rc = db ? db_audit_verify(db, 0, NULL, &c, err, sizeof(err))
		            : -1;
		ok(rc == 0 && c.rows == 7 && c.last_id == 7,
		   "db_audit_verify: every chain, 7 rows (%d, %lld)", rc,
		   c.rows);
		db_close(db);
	}
}

/* smimectl stats of path as interleaved left it: a chain per node, and
 * a Prometheus sample per node. */
static void stats(const char *path)
{
	struct db *db = open_node(path, NULL);
	struct db_stats s = { 0 };
	char err[512] = "", *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	ok(db && db_stats_read(db, 0, &s, err, sizeof(err)) == 0 &&
	           s.nnodes == 2 && strcmp(s.nodes[0].node, "mx1") == 0 &&
	           s.nodes[0].rows == 4 && s.nodes[0].last_id == 7 &&
	           strcmp(s.nodes[1].node, "mx2") == 0 &&
	           s.nodes[1].rows == 3 && s.nodes[1].last_id == 6 &&
	           s.audit_rows == 7 && s.audit_unanchored == 7,
	   "stats: mx1 4 rows (head 7), mx2 3 rows (head 6), 7 unanchored "
	   "(%s)",
	   err);
	if (f && db) {
		metrics_write(f, &s, time(NULL), NULL);
		fclose(f);
	}
	ok(out &&
	           strstr(out, "\nsmime_milter_audit_chain_length{node=\"mx1\"}"
	                       " 4\n") &&
	           strstr(out, "\nsmime_milter_audit_chain_length{node=\"mx2\"}"
	                       " 3\n") &&
	           strstr(out, "\nsmime_milter_audit_unanchored_rows 7\n"),
	   "metrics: smime_milter_audit_chain_length{node=...} per node");
	free(out);
	db_stats_free(&s);
	db_close(db);
}

/* path as interleaved left it, a change made, then the verdicts of the
 * two chains. */
static void moved(const char *path)
{
	struct db_audit_check c;

	/* row 3 of mx1 moved into mx2's chain */
	fixture_db_exec(path, "UPDATE audit SET node = 'mx2' WHERE id = 3");
	ok(verify_node(path, "mx2", &c) == 1 && c.bad_id == 3 &&
	           c.problem == DB_AUDIT_CHANGED,
	   "row 3 moved to mx2: its hash (v3, the node in it) no longer "
	   "holds (%lld, %d)",
	   c.bad_id, (int)c.problem);
	ok(verify_node(path, "mx1", &c) == 1 && c.bad_id == 4 &&
	           c.prev_id == 1 && c.problem == DB_AUDIT_LINK,
	   "... and mx1's chain misses it: row 4 does not link to row 1 "
	   "(%lld, %lld, %d)",
	   c.bad_id, c.prev_id, (int)c.problem);
	/* moved with its prev_hash made to fit the new chain: still the
	 * hash */
	fixture_db_exec(path, "UPDATE audit SET prev_hash = (SELECT hash"
	                      " FROM audit WHERE id = 2) WHERE id = 3");
	ok(verify_node(path, "mx2", &c) == 1 && c.bad_id == 3 &&
	           c.problem == DB_AUDIT_CHANGED,
	   "... its prev_hash made to fit mx2: the hash still says mx1");
	fixture_db_exec(path, "UPDATE audit SET node = '' WHERE id = 3");
	ok(verify_node(path, "", &c) == 1 && c.bad_id == 3 &&
	           c.problem == DB_AUDIT_CHANGED,
	   "a named node's row moved to node \"\" is found too");
}

/* A schema 8 database with the rows src's chain "" holds (copied with
 * their ids and hashes), migrated to 9: the old rows verify as node "",
 * and rows of a named node start a chain of their own. */
static void old_rows(const char *src, const char *path)
{
	struct db *db = NULL, *s = open_node(src, NULL);
	struct db_audit_check c;
	char err[512] = "";
	struct db_q q;
	int bad = 0, n = 0;
	char *h3;

	for (int i = 0; i < 3 && s; i++)
		bad |= add(s, i == 1 ? "OLD-B" : "OLD");
	if (fixture_db_reset(path) != 0 ||
	    db_open_raw(path, DB_CREATE, &db, err, sizeof(err)) != 0 ||
	    db_migrate_to(db, 8, err, sizeof(err)) != 0) {
		printf("# schema 8: %s\n", err);
		bad = 1;
	}
	if (!bad && db_q_open(&q, s,
	                      "SELECT id, at, queue_id, from_addr, action,"
	                      " result, prev_hash, hash FROM audit"
	                      " WHERE node = '' ORDER BY id",
	                      DB_NOARGS, err, sizeof(err)) == 0) {
		while (db_q_next(&q) > 0 && !bad) {
			bad |= db_run(db,
			              "INSERT INTO audit (id, at, queue_id,"
			              " from_addr, action, result, prev_hash,"
			              " hash) VALUES (?,?,?,?,?,?,?,?)",
			              DB_ARGS(DB_INT(db_q_int(&q, 0)),
			                      DB_INT(db_q_int(&q, 1)),
			                      DB_TEXT(db_q_text(&q, 2)),
			                      DB_TEXT(db_q_text(&q, 3)),
			                      DB_TEXT(db_q_text(&q, 4)),
			                      DB_TEXT(db_q_text(&q, 5)),
			                      DB_TEXT(db_q_text(&q, 6)),
			                      DB_TEXT(db_q_text(&q, 7))),
			              err, sizeof(err)) != 0;
			n++;
		}
		db_q_close(&q);
	}
	db_close(s);
	ok(!bad && n == 3 && db_version(db) == 8,
	   "a schema 8 database with 3 audit rows (%s)", bad ? err : "ok");
	h3 = fixture_db_text(path, "SELECT hash FROM audit WHERE id = 3");
	ok(db_migrate_to(db, DB_SCHEMA_VERSION, err, sizeof(err)) == 0 &&
	           db_version(db) == DB_SCHEMA_VERSION,
	   "migrated to schema %d (%s)", DB_SCHEMA_VERSION, err);
	db_close(db);
	ok(qint(path, "SELECT count(*) FROM audit WHERE node = '%s'", "") == 3,
	   "the old rows belong to node \"\"");
	ok(verify_node(path, "", &c) == 0 && c.rows == 3 && h3 &&
	           strcmp(c.last_hash, h3) == 0,
	   "... and verify unchanged: 3 rows, the same head hash");
	free(h3);
	db = open_node(path, "mx1");
	ok(db && add(db, "NEW1") == 0 && add(db, "NEW2") == 0,
	   "rows of node mx1 after the migration");
	db_close(db);
	ok(qint(path, "SELECT id FROM audit WHERE queue_id = '%s'", "NEW1") ==
	           4,
	   "... take the ids after the old ones (the sequence moved past "
	   "them)");
	ok(verify_node(path, "mx1", &c) == 0 && c.rows == 2,
	   "... form a chain of their own (%lld rows)", c.rows);
	ok(verify_node(path, "", &c) == 0 && c.rows == 3,
	   "... and node \"\" still verifies");
}

/* Two processes, one per node, writing at once: both finish and both
 * chains verify. */
static void two_processes(const char *path)
{
	static const char *const names[2] = { "gw-a", "gw-b" };
	pid_t pid[2];
	int fine = 1;
	struct db_audit_check c;

	fflush(stdout); /* or the children print the parent's lines again */
	for (int k = 0; k < 2; k++) {
		pid[k] = fork();
		if (pid[k] == 0) {
			struct db *db = open_node(path, names[k]);
			char qid[32];
			int rc = db == NULL;
			for (int i = 0; i < 100 && rc == 0; i++) {
				snprintf(qid, sizeof(qid), "%s-%d", names[k],
				         i);
				rc = add(db, qid);
			}
			db_close(db);
			fflush(stdout); /* _exit does not: keep the reason */
			_exit(rc == 0 ? 0 : 1);
		}
	}
	for (int k = 0; k < 2; k++) {
		int st = 0;
		if (pid[k] < 0 || waitpid(pid[k], &st, 0) != pid[k] ||
		    !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			fine = 0;
	}
	ok(fine, "two processes of two nodes wrote 100 rows each at once");
	for (int k = 0; k < 2; k++)
		ok(verify_node(path, names[k], &c) == 0 && c.rows == 100,
		   "node %s: its 100 rows verify (%lld)", names[k], c.rows);
}

/* PostgreSQL: node mx1's open transaction (its lock held) does not hold
 * up mx2's writer; another mx1 writer waits, until lock_timeout. */
static void no_wait(const char *path)
{
	struct db *a = open_node(path, "mx1"), *b = open_node(path, "mx2"),
	          *a2 = open_node(path, "mx1");
	char err[512];
	time_t t0;
	int rc;

	ok(a && db_begin(a, err, sizeof(err)) == 0 && add(a, "HELD") == 0,
	   "node mx1 writes a row and keeps its transaction open");
	t0 = time(NULL);
	ok(b && add(b, "FREE") == 0 && time(NULL) - t0 < 3,
	   "node mx2 writes meanwhile, without waiting (%lds)",
	   (long)(time(NULL) - t0));
	rc = a2 ? add(a2, "WAITS") : -1;
	ok(rc != 0 && time(NULL) - t0 >= 4,
	   "a second writer of node mx1 waits for the first (lock_timeout)");
	ok(a && db_commit(a, err, sizeof(err)) == 0 && add(a2, "AFTER") == 0,
	   "... and writes once the first commits");
	db_close(a);
	db_close(b);
	db_close(a2);
}

int main(void)
{
	const char *dir = fixture_dir("audit_node");
	char path[256], src[256];

	(void)dir;
	snprintf(path, sizeof(path), "%s", fixture_db("nodes"));
	interleaved(path);
	stats(path);
	moved(path);
	snprintf(src, sizeof(src), "%s", fixture_db("src"));
	old_rows(src, path);
	snprintf(path, sizeof(path), "%s", fixture_db("procs"));
	two_processes(path);
	if (fixture_db_pg()) {
		snprintf(path, sizeof(path), "%s", fixture_db("nowait"));
		no_wait(path);
	} else
		for (int i = 0; i < 4; i++)
			ok(1, "# skip: the per-node lock is PostgreSQL's");
	if (fixture_cleanup() != 0)
		return 1;
	return tap_done();
}
