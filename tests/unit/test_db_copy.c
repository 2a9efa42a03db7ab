/* Unit tests: copying an SQLite store (lib/db_copy.c, smimectl migrate)
 * into SQLite or, with SMIME_TEST_DB_URI (tests/admin/migrate.sh), into
 * PostgreSQL: the order of the tables by their foreign keys, a copy with
 * ids, NULLs, blobs and the audit chain kept and the identities set past
 * the ids, and the refusals (a target with rows, an old source, a broken
 * chain). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"
#include "fixture.h"
#include "tap.h"

static char err[1024];

/* "a b c": the names of t in their order, into buf. */
static const char *names(const struct db_copy_table *t, size_t n, char *buf,
                         size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s",
		                         i ? " " : "", t[i].name);
	return buf;
}

static void order(void)
{
	char *ra[] = { "b" }, *rb[] = { "c" }, *rd[] = { "d" },
	     *re[] = { "zz" };
	struct db_copy_table t[] = {
		{ .name = "a", .refs = ra, .nrefs = 1 },
		{ .name = "b", .refs = rb, .nrefs = 1 },
		{ .name = "c" },
		{ .name = "d", .refs = rd, .nrefs = 1 },
		{ .name = "e", .refs = re, .nrefs = 1 },
	};
	char *rx[] = { "y" }, *ry[] = { "x" };
	struct db_copy_table cyc[] = {
		{ .name = "w" },
		{ .name = "x", .refs = rx, .nrefs = 1 },
		{ .name = "y", .refs = ry, .nrefs = 1 },
	};
	char buf[64];

	ok(db_copy_order(t, 5, err, sizeof(err)) == 0 &&
	           strcmp(names(t, 5, buf, sizeof(buf)), "c b a d e") == 0,
	   "referenced tables first, the rest in catalogue order; a "
	   "reference to itself or to no table is ignored (%s)",
	   buf);
	ok(db_copy_order(cyc, 3, err, sizeof(err)) == -1 &&
	           strstr(err, "form a cycle") &&
	           strcmp(names(cyc, 3, buf, sizeof(buf)), "w x y") == 0,
	   "a cycle is refused and the tables left as they were (%s)", err);
	ok(db_copy_order(NULL, 0, err, sizeof(err)) == 0, "no tables: fine");
}

/* A source at the current schema with rows in several tables: a
 * certificate (id 7) and its mapping (a foreign key), three audit rows
 * with NULLs, an anchor whose token holds a NUL byte. */
static struct db *source(const char *path)
{
	static const unsigned char tok[] = { 0x30, 0x00, 0xff, 0x00, 0x01 };
	struct audit_row r = { .at = 1700000000, .action = "signed" };
	struct db *db;

	if (db_open(path, DB_CREATE, &db, err, sizeof(err)) != 0)
		return NULL;
	fixture_db_exec(path,
	                "INSERT INTO certificates (id, kind, mailbox, subject,"
	                " issuer, serial, fingerprint, not_before, not_after,"
	                " key_backend, key_location, cert_pem, created_at)"
	                " VALUES (7, 'individual', 'andi@x.go.id', 'CN=a',"
	                " 'CN=ca', '01', 'AB', 1, 2, 'pem', '/k', 'PEM', 3);"
	                " INSERT INTO mailboxes VALUES ('andi@x.go.id', 7,"
	                " 'individual', 4);"
	                " INSERT INTO mailbox_history (id, address, cert_id,"
	                " event, at) VALUES (12, 'andi@x.go.id', 7, 'mapped',"
	                " 5)");
	for (int i = 0; i < 3; i++) {
		r.queue_id = i == 1 ? NULL : "Q";
		r.message_id = i == 2 ? "<m@x>" : NULL;
		r.recipients = i == 2 ? "p@example.org" : NULL;
		if (db_audit_add(db, &r, err, sizeof(err)) != 0)
			printf("# audit_add: %s\n", err);
	}
	if (db_audit_anchor_add(db, 3, "00", tok, sizeof(tok), 5, "http://t",
	                        err, sizeof(err)) != 1)
		printf("# anchor_add: %s\n", err);
	return db;
}

static void copy(void)
{
	const char *src_path = fixture_path("copy-src.db");
	const char *dst = fixture_db("copy-dst");
	struct db_copy_report r;
	struct db *src = source(src_path), *db;
	char buf[512];
	int rc;

	ok(src != NULL, "a source with rows (%s)", src ? "" : err);
	if (src == NULL)
		return;
	rc = db_copy_to(src, dst, &r, err, sizeof(err));
	ok(rc == 0, "copied (%d: %s)", rc, rc ? err : "");
	names(r.tables, r.n, buf, sizeof(buf));
	ok(r.n == 12 &&
	           strstr(buf, "certificates") < strstr(buf, "mailboxes") &&
	           strstr(buf, "certificates") < strstr(buf, "alerts_sent"),
	   "every table, each after those it references (%s)", buf);
	ok(r.src_audit.rows == 3 && r.dst_audit.rows == 3 &&
	           r.dst_audit.last_id == 3 &&
	           strcmp(r.src_audit.last_hash, r.dst_audit.last_hash) == 0,
	   "the copy's audit chain verifies with the source's head (%lld "
	   "rows, %.12s...)",
	   r.dst_audit.rows, r.dst_audit.last_hash);
	db_copy_report_free(&r);
	db_copy_report_free(NULL);
	ok(fixture_db_int(dst, "SELECT count(*) FROM audit WHERE message_id"
	                       " IS NULL AND recipients IS NULL") == 2 &&
	           fixture_db_int(dst, "SELECT count(*) FROM audit WHERE"
	                               " queue_id IS NULL") == 1,
	   "NULLs stay NULL");
	ok(fixture_db_int(dst, "SELECT length(token) FROM audit_anchors") == 5,
	   "a blob with NUL bytes is copied whole");
	ok(fixture_db_int(dst, "SELECT cert_id FROM mailboxes") == 7 &&
	           fixture_db_int(dst, "SELECT id FROM mailbox_history") == 12,
	   "ids are kept");

	/* the target goes on: new rows after the copied ids */
	if (db_open(dst, DB_READWRITE, &db, err, sizeof(err)) == 0) {
		struct audit_row a = { .at = 1, .action = "signed" };
		struct db_audit_check c;
		long long an = db_audit_anchor_add(db, 1, "00",
		                                   (const unsigned char *)"x",
		                                   1, 1, "u", err, sizeof(err));
		ok(an == 2, "a new anchor gets id 2 (%lld %s)", an,
		   an < 0 ? err : "");
		ok(db_audit_add(db, &a, err, sizeof(err)) == 0 &&
		           db_audit_verify(db, 0, NULL, &c, err, sizeof(err)) ==
		                   0 &&
		           c.rows == 4,
		   "a new audit row continues the chain (%lld rows)", c.rows);
		db_close(db);
	} else
		ok(0, "open the copy (%s)", err);
	ok(fixture_db_exec(dst,
	                   "INSERT INTO mailbox_history (address, event, at)"
	                   " VALUES ('b@x.go.id', 'e', 1)") == 0 &&
	           fixture_db_int(dst, "SELECT max(id) FROM mailbox_history") ==
	                   13,
	   "an insert without an id takes the next after the copied ones");

	/* refusals */
	rc = db_copy_to(src, dst, &r, err, sizeof(err));
	ok(rc == DB_COPY_NOT_EMPTY && strstr(err, "not empty") &&
	           strstr(err, "audit (4 rows)"),
	   "a target with rows is refused (%s)", err);
	db_copy_report_free(&r);
	dst = fixture_db("copy-dst2");
	fixture_db_set_version(src_path, DB_SCHEMA_VERSION - 1);
	rc = db_copy_to(src, dst, &r, err, sizeof(err));
	ok(rc == -1 && strstr(err, "smimectl init"),
	   "a source at an old schema is refused (%s)", err);
	db_copy_report_free(&r);
	fixture_db_set_version(src_path, DB_SCHEMA_VERSION);
	fixture_db_exec(src_path, "UPDATE audit SET result = 'x' WHERE id = 2");
	rc = db_copy_to(src, dst, &r, err, sizeof(err));
	ok(rc == DB_COPY_SRC_BROKEN && strstr(err, "broken at row 2"),
	   "a source whose chain is broken is refused (%s)", err);
	db_copy_report_free(&r);
	ok(fixture_db_pg() ? fixture_db_int(dst, "SELECT count(*) FROM"
	                                         " information_schema.tables"
	                                         " WHERE table_schema ="
	                                         " current_schema()") == 0
	                   : access(dst, F_OK) != 0,
	   "... nothing written to the target");
	db_close(src);
}

int main(void)
{
	fixture_dir("db-copy");
	order();
	copy();
	return fixture_end(tap_done());
}
