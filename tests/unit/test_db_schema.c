/* Unit tests: the schema of the store (lib/db.c, db_sqlite.c, db_pg.c),
 * on SQLite or, with SMIME_TEST_DB_URI (tests/admin/pg.sh), on
 * PostgreSQL: a fresh database, one built at schema 3 with rows and then
 * migrated, a newer schema refused, and processes creating one database at
 * once. */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "db.h"
#include "db_int.h"
#include "fixture.h"
#include "tap.h"

static char err[512];

/* fixture.h's, under the names the checks read best with */
#define path_of(name)        fixture_db(name)
#define raw_int(path, sql)   fixture_db_int(path, sql)
#define raw_exec(path, sql)  fixture_db_exec(path, sql)
#define raw_version(path, v) fixture_db_set_version(path, v)

/* text on SQLite, pg on PostgreSQL: the catalogue queries differ. */
static const char *dialect(const char *text, const char *pg)
{
	return fixture_db_pg() ? pg : text;
}

static void fresh_schema(void)
{
	const char *p = path_of("fresh.db");
	struct db *db;

	ok(db_open(p, DB_READWRITE, &db, err, sizeof(err)) == -1 &&
	           db == NULL && strstr(err, "smimectl init"),
	   "a missing database is refused and says to run init (%s)", err);
	ok(db_open(p, DB_CREATE, &db, err, sizeof(err)) == 0,
	   "DB_CREATE makes a new database (%s)", err);
	ok(db_version(db) == DB_SCHEMA_VERSION, "at schema %d (%d)",
	   DB_SCHEMA_VERSION, db_version(db));
	db_close(db);
#define TABLES                                                         \
	" IN ('certificates', 'mailboxes', 'mailbox_history', 'crls'," \
	" 'audit', 'alerts_sent', 'renewals', 'recipient_certs',"      \
	" 'revoked_serials', 'audit_anchors', 'crl_sources',"          \
	" 'ocsp_responses')"
#define PG_COLS(t)                                                      \
	"SELECT count(*) FROM information_schema.columns WHERE"         \
	" table_schema = current_schema() AND table_name = '" t "' AND" \
	" column_name"
	ok(raw_int(p, dialect("SELECT count(*) FROM sqlite_master WHERE"
	                      " type = 'table' AND name" TABLES,
	                      "SELECT count(*) FROM information_schema.tables"
	                      " WHERE table_schema = current_schema() AND"
	                      " table_name" TABLES)) == 12,
	   "every table is there");
	ok(raw_int(p, dialect("SELECT count(*) FROM pragma_table_info('audit')"
	                      " WHERE name IN ('prev_hash', 'hash')",
	                      PG_COLS("audit") " IN ('prev_hash', 'hash')")) ==
	           2,
	   "the audit table has its hash columns");
	ok(raw_int(p, dialect("SELECT count(*) FROM"
	                      " pragma_table_info('audit_anchors') WHERE name"
	                      " IN ('id', 'audit_id', 'hash', 'token',"
	                      " 'gen_time', 'tsa_url', 'created_at')",
	                      PG_COLS("audit_anchors") " IN ('id', 'audit_id',"
	                                               " 'hash', 'token',"
	                                               " 'gen_time', 'tsa_url',"
	                                               " 'created_at')")) == 7,
	   "schema 7: the audit_anchors table has its seven columns");
	ok(db_open(p, DB_READONLY, &db, err, sizeof(err)) == 0 &&
	           db_version(db) == DB_SCHEMA_VERSION,
	   "a current database opens read-only");
	db_close(db);
	ok(db_open(p, DB_CREATE, &db, err, sizeof(err)) == 0 &&
	           db_version(db) == DB_SCHEMA_VERSION,
	   "DB_CREATE on a current database changes nothing");
	db_close(db);
	raw_version(p, 99);
	ok(db_open(p, DB_CREATE, &db, err, sizeof(err)) == -1 &&
	           strstr(err, "newer than this program"),
	   "a newer schema is refused (%s)", err);
	db_close(NULL);
}

/* Two processes create one database at once (two nodes starting on an
 * empty PostgreSQL database, two smimectl init): each migration step reads
 * the version again under its lock, so one migrates, the other finds it
 * done, and both open it. */
static int racer(const char *p, int k)
{
	struct db *db;
	int rc = db_open(p, DB_CREATE, &db, err, sizeof(err));

	if (rc == 0 && db_version(db) != DB_SCHEMA_VERSION)
		rc = -1;
	if (rc != 0)
		printf("# racer %d: %s\n", k, err);
	fflush(stdout);
	db_close(rc == 0 ? db : NULL);
	return rc == 0 ? 0 : 1;
}

static void racing_create(void)
{
	const char *p = path_of("race.db");
	pid_t kids[4];
	int good = 1, st;

	fflush(stdout);
	for (int k = 0; k < 4; k++)
		if ((kids[k] = fork()) == 0)
			_exit(racer(p, k));
	for (int k = 0; k < 4; k++)
		if (kids[k] < 0 || waitpid(kids[k], &st, 0) != kids[k] ||
		    !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			good = 0;
	ok(good, "four processes create one database at once: all open it");
	ok(raw_int(p, "SELECT count(*) FROM certificates") == 0,
	   "... migrated once (the tables are there)");
}

/* A database at schema 3 with rows of that time: migrated to the current
 * schema, its CRL revocations carried into revoked_serials and its audit
 * rows chained. */
static void old_schema(void)
{
	const char *p = path_of("old.db");
	struct db_audit_check chk;
	struct db_cert c;
	struct db *db;
	int rc = db_open_raw(p, DB_CREATE, &db, err, sizeof(err));

	/* the migrations themselves build it: at 3, the version set */
	if (rc == 0) {
		rc = db_migrate_to(db, 3, err, sizeof(err));
		db_close(db);
	}
	ok(rc == 0 &&
	           raw_exec(p,
	                    "INSERT INTO certificates (kind, mailbox,"
	                    " subject, issuer, serial, fingerprint,"
	                    " not_before, not_after, status, key_backend,"
	                    " key_location, cert_pem, created_at,"
	                    " revoked_at, revocation_reason) VALUES"
	                    " ('role', 'sekda@banjarkota.go.id', 'CN=S',"
	                    " 'CN=CA', '0A', 'F1', 1, 2, 'revoked', 'pem',"
	                    " 'k', 'pem', 1, 5, 'crl'),"
	                    " ('individual', 'andi@banjarkota.go.id',"
	                    " 'CN=A', 'CN=CA', '0B', 'F2', 1, 2, 'active',"
	                    " 'pem', 'k', 'pem', 1, NULL, NULL);"
	                    "INSERT INTO audit (at, action, result) VALUES"
	                    " (10, 'signed', 'ok'), (11, 'passed', NULL)") == 0,
	   "a schema 3 database with rows, built from its migrations");
	ok(db_open(p, DB_READWRITE, &db, err, sizeof(err)) == -1 &&
	           strstr(err, "schema version 3"),
	   "it is refused until migrated (%s)", err);
	ok(db_open(p, DB_CREATE, &db, err, sizeof(err)) == 0 &&
	           db_version(db) == DB_SCHEMA_VERSION,
	   "schema 3 -> %d (%s)", DB_SCHEMA_VERSION, err);
	ok(db_serial_revoked(db, "CN=CA", "0a", err, sizeof(err)) == 1 &&
	           db_serial_revoked(db, "CN=CA", "0B", err, sizeof(err)) == 0,
	   "the CRL revocation is carried into revoked_serials");
	ok(db_cert_find(db, "F2", &c, err, sizeof(err)) == 1 &&
	           strcmp(c.mailbox, "andi@banjarkota.go.id") == 0 &&
	           c.owner == NULL && c.unit == NULL,
	   "old certificates read back, the new columns NULL");
	db_cert_clear(&c);
	ok(db_audit_verify(db, 0, NULL, &chk, err, sizeof(err)) == 0 &&
	           chk.rows == 2,
	   "the old audit rows are chained (%lld rows)", chk.rows);
	ok(raw_int(p, "SELECT count(*) FROM audit_anchors") == 0,
	   "the migrated database has an empty audit_anchors table");
	db_close(db);
}

int main(void)
{
	fixture_dir("db-schema");
	fresh_schema();
	old_schema();
	racing_create();
	return fixture_end(tap_done());
}
