/* Unit tests: the store (lib/db*.c), on SQLite or, with SMIME_TEST_DB_URI
 * (tests/admin/pg.sh), on PostgreSQL: the certificate, audit, renewal,
 * recipient and report queries, the statement helper's parameters and
 * error paths, and db_revoke over more than 64 rows.  The schema paths are
 * test_db_schema.c's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"
#include "db_int.h"
#include "fixture.h"
#include "tap.h"

static char err[512];

/* A fresh database for name (a path, or a PostgreSQL URI when the tests
 * run there: fixture.h). */
static const char *path_of(const char *name)
{
	return fixture_db(name);
}

/* The first column of the first row of text on its own connection, as an
 * integer (-1: no row or an error), so checks do not go through the
 * queries under test. */
static long long raw_int(const char *path, const char *text)
{
	return fixture_db_int(path, text);
}

static int raw_exec(const char *path, const char *text)
{
	return fixture_db_exec(path, text);
}

/* text on SQLite, pg on PostgreSQL: the catalogue queries differ. */
static const char *dialect(const char *text, const char *pg)
{
	return fixture_db_pg() ? pg : text;
}

/* A certificate row with every field set, made distinct by n. */
static struct db_cert cert(int n, const char *mailbox, const char *serial)
{
	static char fp[8][80];

	snprintf(fp[n % 8], sizeof(fp[0]), "%064X", (unsigned)n);
	return (struct db_cert){ .kind = "individual",
		                 .mailbox = (char *)mailbox,
		                 .subject = "CN=Andi",
		                 .issuer = "CN=BSrE CA",
		                 .serial = (char *)serial,
		                 .fingerprint = fp[n % 8],
		                 .not_before = 1700000000,
		                 .not_after = 1800000000,
		                 .key_backend = "pem",
		                 .key_location = "/etc/smime/andi.key",
		                 .secret_file = "/etc/smime/andi.pass",
		                 .cert_pem = "-----BEGIN CERTIFICATE-----",
		                 .chain_pem = "chain",
		                 .owner = "Andi",
		                 .nip = "198001012000011001",
		                 .unit = "Diskominfo",
		                 .contact = "it@banjarkota.go.id" };
}

/* A recipient certificate row of serial at address. */
static struct db_recipient recipient(char *address, char *serial,
                                     char *fingerprint, char *source)
{
	return (struct db_recipient){ .address = address,
		                      .subject = "CN=Mitra",
		                      .issuer = "CN=BSrE CA",
		                      .serial = serial,
		                      .fingerprint = fingerprint,
		                      .not_before = 1,
		                      .not_after = 2,
		                      .cert_pem = "pem",
		                      .source = source };
}

static int count_cert(void *arg, const char *address, const struct db_cert *c)
{
	int *n = arg;

	if (address && strcmp(address, c->mailbox) == 0)
		n[0]++;
	n[1]++;
	return 0;
}

static int count_history(void *arg, time_t at, const char *address,
                         long long cert_id, const char *event,
                         const char *detail, const char *actor)
{
	char *events = arg;
	size_t used = strlen(events);

	snprintf(events + used, 256 - used, "%s%s", used ? "," : "", event);
	return 0;
}

static void certificates(struct db *db)
{
	struct db_cert a = cert(1, "andi@banjarkota.go.id", "01"), b, got;
	char events[256] = "", spec[32];
	int n[2] = { 0, 0 };

	ok(db_cert_add(db, &a, err, sizeof(err)) == 0 && a.id > 0,
	   "db_cert_add (%s)", err);
	ok(db_cert_exists(db, a.fingerprint) && !db_cert_exists(db, "00"),
	   "db_cert_exists");
	ok(db_cert_add(db, &a, err, sizeof(err)) == -1 &&
	           strncmp(err, "database: ", 10) == 0,
	   "a second copy is refused: %s", err);
	snprintf(spec, sizeof(spec), "%lld", a.id);
	ok(db_cert_find(db, spec, &got, err, sizeof(err)) == 1,
	   "db_cert_find by id");
	ok(got.id == a.id && strcmp(got.kind, a.kind) == 0 &&
	           strcmp(got.mailbox, a.mailbox) == 0 &&
	           strcmp(got.subject, a.subject) == 0 &&
	           strcmp(got.issuer, a.issuer) == 0 &&
	           strcmp(got.serial, a.serial) == 0 &&
	           strcmp(got.fingerprint, a.fingerprint) == 0 &&
	           got.not_before == a.not_before &&
	           got.not_after == a.not_after &&
	           strcmp(got.status, "active") == 0 &&
	           strcmp(got.key_backend, a.key_backend) == 0 &&
	           strcmp(got.key_location, a.key_location) == 0 &&
	           strcmp(got.secret_file, a.secret_file) == 0 &&
	           strcmp(got.cert_pem, a.cert_pem) == 0 &&
	           strcmp(got.chain_pem, a.chain_pem) == 0 &&
	           got.created_at > 0 && got.revoked_at == 0 &&
	           got.revocation_reason == NULL &&
	           strcmp(got.owner, a.owner) == 0 &&
	           strcmp(got.nip, a.nip) == 0 &&
	           strcmp(got.unit, a.unit) == 0 &&
	           strcmp(got.contact, a.contact) == 0,
	   "all 22 columns read back as written");
	db_cert_clear(&got);
	ok(got.mailbox == NULL && got.id == 0, "db_cert_clear zeroes");
	db_cert_clear(NULL);
	ok(db_cert_find(db, "01", &got, err, sizeof(err)) == 1 &&
	           got.id == a.id,
	   "db_cert_find by serial");
	db_cert_clear(&got);
	ok(db_cert_find(db, "no such", &got, err, sizeof(err)) == 0,
	   "db_cert_find: nothing");
	b = cert(2, "andi@banjarkota.go.id", "01");
	db_cert_add(db, &b, err, sizeof(err));
	ok(db_cert_find(db, "01", &got, err, sizeof(err)) == -1 &&
	           strstr(err, "ambiguous") && got.mailbox == NULL,
	   "a serial of two certificates is ambiguous (%s)", err);

	ok(db_map(db, a.mailbox, a.id, "individual", "t", err, sizeof(err)) ==
	                   0 &&
	           db_map(db, a.mailbox, b.id, "individual", "t", err,
	                  sizeof(err)) == 0,
	   "db_map twice (%s)", err);
	db_cert_find(db, a.fingerprint, &got, err, sizeof(err));
	is_str(got.status, "superseded", "the first is superseded");
	db_cert_clear(&got);
	ok(db_mappings(db, count_cert, n, err, sizeof(err)) == 0 && n[0] == 1 &&
	           n[1] == 1,
	   "db_mappings: one mapping");
	n[0] = n[1] = 0;
	ok(db_certs(db, count_cert, n, err, sizeof(err)) == 0 && n[1] == 2 &&
	           n[0] == 1,
	   "db_certs: two certificates, one mapped");
	ok(db_revoke_id(db, b.id, "keyCompromise", 1750000000, "t", err,
	                sizeof(err)) == 1 &&
	           db_revoke_id(db, b.id, "keyCompromise", 1750000000, "t", err,
	                        sizeof(err)) == 0,
	   "db_revoke_id: 1, then 0");
	ok(db_unmap(db, a.mailbox, "t", err, sizeof(err)) == 1 &&
	           db_unmap(db, a.mailbox, "t", err, sizeof(err)) == 0,
	   "db_unmap: 1, then 0");
	ok(db_history(db, a.mailbox, 0, count_history, events, err,
	              sizeof(err)) == 0,
	   "db_history");
	is_str(events, "mapped,superseded,mapped,revoked,unmapped",
	       "the mailbox's history in order");
	ok(db_crl_add(db, "CN=BSrE CA", 1700000000, 1790000000, 3, err,
	              sizeof(err)) == 0,
	   "db_crl_add");
}

/* db_revoke with more rows than the 64 it once collected: every row
 * revoked and every one in the history. */
static void revoke_many(const char *p, struct db *db)
{
	enum { N = 70, R = 3 };
	struct db_recipient r;
	int count = -1, added, rc = 0;

	for (int i = 0; i < N && rc == 0; i++) {
		struct db_cert c = cert(100 + i, "role@banjarkota.go.id", "77");
		rc = db_cert_add(db, &c, err, sizeof(err));
	}
	r = recipient(NULL, "77", "AB", "import");
	for (int i = 0; i < R && rc == 0; i++) {
		char addr[64];
		snprintf(addr, sizeof(addr), "m%d@partner.go.id", i);
		r.address = addr;
		rc = db_recipient_add(db, &r, "t", &added, err, sizeof(err));
	}
	ok(rc == 0, "%d certificates and %d recipient rows of serial 77 (%s)",
	   N, R, err);
	ok(db_revoke(db, "CN=BSrE CA", "77", "crl", 1750000000, "crl-import",
	             &count, err, sizeof(err)) == 0 &&
	           count == N + R,
	   "db_revoke counts %d (%d)", N + R, count);
	ok(raw_int(p, "SELECT count(*) FROM certificates WHERE serial = '77'"
	              " AND status = 'revoked' AND revoked_at = 1750000000"
	              " AND revocation_reason = 'crl'") == N,
	   "all %d certificates revoked", N);
	ok(raw_int(p, "SELECT count(DISTINCT h.cert_id) FROM mailbox_history h"
	              " JOIN certificates c ON c.id = h.cert_id"
	              " WHERE h.event = 'revoked' AND h.detail = 'crl'"
	              " AND h.actor = 'crl-import' AND c.serial = '77'"
	              " AND h.address = 'role@banjarkota.go.id'") == N,
	   "every one of the %d has its history row", N);
	ok(raw_int(p, "SELECT count(*) FROM recipient_certs WHERE serial = "
	              "'77' AND status = 'revoked'") == R &&
	           raw_int(p, "SELECT count(*) FROM mailbox_history WHERE"
	                      " event = 'recipient-revoked' AND detail = '77'"
	                      " AND cert_id IS NULL") == R,
	   "the %d recipient rows too, with their history", R);
	ok(db_revoke(db, "CN=BSrE CA", "77", "crl", 1750000000, "crl-import",
	             &count, err, sizeof(err)) == 0 &&
	           count == 0,
	   "a second run changes nothing (%d)", count);
	ok(db_revoke(db, NULL, "nothing", "crl", 1, "t", &count, err,
	             sizeof(err)) == 0 &&
	           count == 0,
	   "an unknown serial: 0");
}

/* 1 when the audit chain verifies no more after sql, at row id, whose
 * content changed. */
static int changed_breaks(const char *p, struct db *db, const char *sql,
                          long long id)
{
	struct db_audit_check c;

	raw_exec(p, sql);
	return db_audit_verify(db, 0, NULL, &c, err, sizeof(err)) == 1 &&
	       c.bad_id == id && c.problem == DB_AUDIT_CHANGED;
}

/* Schema 7: an anchor of row 2 (c: the verified chain) stored and read
 * back with its row's hash now; the token, with a NUL in it, byte for
 * byte.  Removed again at the end. */
static void anchors(const char *p, struct db *db,
                    const struct db_audit_check *c)
{
	static const unsigned char tok[] = { 0x30, 0x03, 0x00, 0x01, 0xff };
	struct db_audit_anchor *a;
	struct db_audit_check now;
	size_t n = 0;
	long long id;

	id = db_audit_anchor_add(db, c->last_id, c->last_hash, tok, sizeof(tok),
	                         1700000000, "http://127.0.0.1:1/tsa", err,
	                         sizeof(err));
	ok(id > 0, "db_audit_anchor_add (%s)", err);
	ok(db_audit_verify_anchors(db, 0, NULL, &now, &a, &n, err,
	                           sizeof(err)) == 0 &&
	           n == 1 && a[0].id == id && a[0].audit_id == c->last_id &&
	           strcmp(a[0].hash, c->last_hash) == 0 &&
	           a[0].token_len == sizeof(tok) &&
	           memcmp(a[0].token, tok, sizeof(tok)) == 0 &&
	           a[0].gen_time == 1700000000 &&
	           strcmp(a[0].tsa_url, "http://127.0.0.1:1/tsa") == 0 &&
	           a[0].created_at > 0 && a[0].row_found == 1 &&
	           strcmp(a[0].row_hash, c->last_hash) == 0 &&
	           now.rows == c->rows,
	   "the anchor reads back whole, with its row's hash now (%s)", err);
	db_audit_anchors_free(a, n);
	raw_exec(p, "UPDATE audit SET id = 99 WHERE id = 2");
	ok(db_audit_verify_anchors(db, 0, NULL, &now, &a, &n, err,
	                           sizeof(err)) == 1 &&
	           now.bad_id == 99 && now.problem == DB_AUDIT_CHANGED &&
	           n == 1 && a[0].row_found == 0 && a[0].row_hash[0] == '\0',
	   "an anchor whose row is gone says so, beside the broken chain");
	db_audit_anchors_free(a, n);
	db_audit_anchors_free(NULL, 0);
	raw_exec(p, "UPDATE audit SET id = 2 WHERE id = 99;"
	            "DELETE FROM audit_anchors");
}

static void audit(const char *p, struct db *db)
{
	struct audit_row r = { 1700000000, "Q1", "<1@x>", "a@b", "signed",
		               "01",       "d",  "ok",    NULL,  NULL };
	struct db_audit_check c;

	ok(db_audit_add(db, &r, err, sizeof(err)) == 0, "db_audit_add");
	r.at = 0;
	r.action = "unsigned";
	ok(db_begin(db, err, sizeof(err)) == 0 &&
	           db_audit_add(db, &r, err, sizeof(err)) == 0 &&
	           db_commit(db, err, sizeof(err)) == 0,
	   "db_audit_add inside the caller's transaction");
	ok(db_audit_verify(db, 0, NULL, &c, err, sizeof(err)) == 0 &&
	           c.rows == 2 && c.last_id == 2,
	   "the chain verifies (%lld rows)", c.rows);
	ok(raw_int(p, "SELECT count(*) FROM audit WHERE id = 2 AND at > 0"
	              " AND prev_hash = (SELECT hash FROM audit WHERE id = "
	              "1)") == 1,
	   "row 2 is dated now and linked to row 1");
	db_begin(db, err, sizeof(err));
	db_audit_add(db, &r, err, sizeof(err));
	db_rollback(db);
	ok(raw_int(p, "SELECT count(*) FROM audit") == 2,
	   "a rolled back row is gone");
	/* PostgreSQL's id sequence does not roll back (schema 9: the nodes
	 * take ids from it at once), so the rolled back row left a gap; set
	 * it back so that the rows below are 3 and on, as on SQLite */
	db_audit_id_sync(db, err, sizeof(err));

	/* schema 6: an inbound row with recipients and the signer's issuer
	 * (v2 hash) after the v1 rows; the chain still verifies */
	r.action = "verified";
	r.recipients = "andi@banjarkota.go.id, budi@banjarkota.go.id";
	r.cert_issuer = "CN=BSrE Test CA";
	r.result = "pass";
	ok(db_audit_add(db, &r, err, sizeof(err)) == 0 &&
	           db_audit_verify(db, 0, NULL, &c, err, sizeof(err)) == 0 &&
	           c.rows == 3,
	   "an inbound row with recipients and issuer joins the chain (%lld "
	   "rows)",
	   c.rows);
	ok(raw_int(p, "SELECT count(*) FROM audit WHERE id = 3 AND"
	              " recipients LIKE 'andi@%, budi@%' AND"
	              " cert_issuer = 'CN=BSrE Test CA'") == 1,
	   "recipients and cert_issuer are stored");
	ok(changed_breaks(p, db,
	                  "UPDATE audit SET recipients = "
	                  "'andi@banjarkota.go.id' WHERE id = 3",
	                  3),
	   "a changed recipient list breaks row 3");
	ok(changed_breaks(p, db,
	                  "UPDATE audit SET recipients = NULL, cert_issuer = "
	                  "NULL WHERE id = 3",
	                  3),
	   "clearing both new columns does not pass as a v1 row");
	ok(changed_breaks(p, db,
	                  "UPDATE audit SET cert_issuer = 'CN=X' WHERE id = 1",
	                  1),
	   "setting a new column on a v1 row breaks it");
	raw_exec(p, "DELETE FROM audit WHERE id = 3;"
	            "UPDATE audit SET cert_issuer = NULL WHERE id = 1");
	ok(db_audit_verify(db, 0, NULL, &c, err, sizeof(err)) == 0 &&
	           c.rows == 2,
	   "put back, the two v1 rows verify again");
	r.recipients = r.cert_issuer = NULL;
	r.result = "ok";
	anchors(p, db, &c);
}

static void renewals(struct db *db, long long cert_id)
{
	struct db_renewal r = { 0,        "andi@banjarkota.go.id", "individual",
		                "pkcs11", "pkcs11:object=andi",    NULL,
		                "C0FFEE" },
	                  got;

	ok(db_renewal_add(db, &r, "CSR", cert_id, "t", err, sizeof(err)) == 0 &&
	           r.id > 0,
	   "db_renewal_add (%s)", err);
	ok(db_renewal_find(db, "C0FFEE", &got, err, sizeof(err)) == 1 &&
	           got.id == r.id && strcmp(got.mailbox, r.mailbox) == 0 &&
	           strcmp(got.kind, r.kind) == 0 &&
	           strcmp(got.key_backend, r.key_backend) == 0 &&
	           strcmp(got.key_location, r.key_location) == 0 &&
	           got.secret_file == NULL &&
	           strcmp(got.pubkey_sha256, "C0FFEE") == 0,
	   "db_renewal_find reads it back");
	db_renewal_clear(&got);
	ok(db_renewal_complete(db, r.id, cert_id, err, sizeof(err)) == 0 &&
	           db_renewal_find(db, "C0FFEE", &got, err, sizeof(err)) == 0,
	   "completed, it is no longer open");
	db_renewal_clear(NULL);
	ok(db_alert_sent(db, cert_id, 30, err, sizeof(err)) == 0 &&
	           db_alert_record(db, cert_id, 30, err, sizeof(err)) == 0 &&
	           db_alert_record(db, cert_id, 30, err, sizeof(err)) == 0 &&
	           db_alert_sent(db, cert_id, 30, err, sizeof(err)) == 1 &&
	           db_alert_sent(db, cert_id, 7, err, sizeof(err)) == 0,
	   "alerts: recorded once, per threshold");
}

static int list_recipient(void *arg, const struct db_recipient *r)
{
	char *out = arg;
	size_t used = strlen(out);

	snprintf(out + used, 256 - used, "%s%s:%s:%s", used ? "," : "",
	         r->address, r->serial, r->status);
	return 0;
}

static void recipients(const char *p, struct db *db)
{
	struct db_recipient r;
	char out[256] = "";
	int added = -1, count = -1, rc;

	r = recipient("Mitra@Partner.go.id", "5a", "cd", "harvest");
	r.issuer = "CN=Other CA";
	rc = db_recipient_add(db, &r, "t", &added, err, sizeof(err));
	ok(rc == 0 && added == 1, "db_recipient_add (%s)", err);
	rc = db_recipient_add(db, &r, "t", &added, err, sizeof(err));
	ok(rc == 0 && added == 0, "the same again is not added");
	r.source = "mail";
	ok(db_recipient_add(db, &r, "t", &added, err, sizeof(err)) == -1 &&
	           strstr(err, "import or harvest"),
	   "a bad source is refused");
	ok(db_recipients(db, "MITRA@partner.go.id", 0, list_recipient, out, err,
	                 sizeof(err)) == 0,
	   "db_recipients");
	is_str(out, "mitra@partner.go.id:5A:active",
	       "stored lower-cased, serial upper-cased");
	out[0] = '\0';
	db_recipients(db, NULL, 1, list_recipient, out, err, sizeof(err));
	ok(strstr(out, "m0@partner.go.id") == NULL &&
	           strstr(out, "mitra@") != NULL,
	   "active only leaves out the revoked (%s)", out);
	rc = db_recipient_remove(db, "77", "t", &count, err, sizeof(err));
	ok(rc == 0 && count == 3 &&
	           raw_int(p, "SELECT count(*) FROM mailbox_history WHERE"
	                      " event = 'recipient-remove' AND detail = '77'"
	                      " AND address LIKE 'm_@partner.go.id'") == 3,
	   "remove by serial: every address, each in the history (%d)", count);
	rc = db_recipient_remove(db, "mitra@partner.go.id", "t", &count, err,
	                         sizeof(err));
	ok(rc == 0 && count == 1 &&
	           raw_int(p, "SELECT count(*) FROM recipient_certs") == 0,
	   "remove by address: none left");
	ok(db_recipient_remove(db, "", "t", &count, err, sizeof(err)) == -1,
	   "an empty spec is refused");
	ok(db_serial_revoke_add(db, "CN=X", "0c", "keyCompromise", 5, err,
	                        sizeof(err)) == 0 &&
	           db_serial_revoke_add(db, "CN=X", "0C", NULL, 6, err,
	                                sizeof(err)) == 0 &&
	           db_serial_revoked(db, "CN=X", "0c", err, sizeof(err)) == 1 &&
	           db_serial_revoked(db, "CN=Y", "0C", err, sizeof(err)) == 0,
	   "CRL entries: idempotent, per issuer");
	ok(db_serial_revoke_add(db, NULL, "0c", NULL, 5, err, sizeof(err)) ==
	           -1,
	   "a CRL entry without issuer is refused");
}

struct rows {
	int n, ncols;
	char first[12][64];
	char cell[12][64]; /* the other columns, ' ' between */
	char last[64];
};

static int collect(void *arg, int ncols, const char *const *cols)
{
	struct rows *r = arg;

	if (r->n < 12)
		snprintf(r->first[r->n], sizeof(r->first[0]), "%s",
		         cols[0] ? cols[0] : "(null)");
	for (int i = 1; r->n < 12 && i < ncols; i++) {
		size_t u = strlen(r->cell[r->n]);
		snprintf(r->cell[r->n] + u, sizeof(r->cell[0]) - u, "%s%s",
		         i > 1 ? " " : "", cols[i] ? cols[i] : "(null)");
	}
	snprintf(r->last, sizeof(r->last), "%s",
	         cols[ncols - 1] ? cols[ncols - 1] : "(null)");
	r->ncols = ncols;
	r->n++;
	return 0;
}

static void report(const char *p, struct db *db)
{
	static const int ncols[DB_REPORT_TABLES] = { 6, 6, 5, 5, 2, 2, 4, 5, 5 };
	struct rows rows;

	raw_exec(p, "INSERT INTO audit (at, from_addr, action, result) VALUES"
	            " (1709500000, 'andi@banjarkota.go.id', 'signed', 'ok'),"
	            " (1709600000, 'andi@banjarkota.go.id', 'rejected', 'x'),"
	            " (1712000000, 'budi@x', 'unsigned', 'no certificate'),"
	            " (1712100000, 'budi@x', 'unsigned', 'no certificate'),"
	            " (1690000000, 'budi@x', 'unsigned', 'last year')");
	/* inbound rows (issue 13): March 2024 x3, April x1, last year x1 */
	raw_exec(p, "INSERT INTO audit (at, from_addr, action, result,"
	            " recipients) VALUES"
	            " (1709500000, 'p@partner.go.id', 'decrypted', 'ok',"
	            "  'andi@banjarkota.go.id'),"
	            " (1709500001, 'p@partner.go.id', 'verified', 'pass',"
	            "  'andi@banjarkota.go.id, zz@banjarkota.go.id'),"
	            " (1709600000, 'p@partner.go.id', 'not-decrypted',"
	            "  'budi@banjarkota.go.id is not a recipient',"
	            "  'andi@banjarkota.go.id, budi@banjarkota.go.id'),"
	            " (1712000000, 'q@partner.go.id', 'verify-failed', 'fail',"
	            "  'nobody@banjarkota.go.id'),"
	            " (1690000000, 'q@partner.go.id', 'verified', 'pass',"
	            "  'andi@banjarkota.go.id')");
	for (int t = 0; t < DB_REPORT_TABLES; t++) {
		memset(&rows, 0, sizeof(rows));
		ok(db_report(db, t, 1704067200, 1735689600, 1720000000, collect,
		             &rows, err, sizeof(err)) == 0 &&
		           (rows.n == 0 || rows.ncols == ncols[t]),
		   "report table %d: %d rows of %d columns (%s)", t, rows.n,
		   rows.ncols, err);
		if (t == DB_REPORT_MESSAGES_BY_MONTH)
			ok(rows.n == 12 && strcmp(rows.first[0], "01") == 0 &&
			           strcmp(rows.first[11], "12") == 0,
			   "every month is listed");
		if (t == DB_REPORT_MESSAGES_BY_UNIT)
			ok(rows.n == 2 && strcmp(rows.first[0], "-") == 0 &&
			           strcmp(rows.first[1], "Diskominfo") == 0 &&
			           strcmp(rows.last, "1") == 0,
			   "per unit, by the sender's newest certificate");
		if (t == DB_REPORT_UNSIGNED_REASONS)
			ok(rows.n == 1 &&
			           strcmp(rows.first[0], "no certificate") ==
			                   0 &&
			           strcmp(rows.last, "2") == 0,
			   "unsigned reasons of this year only");
		if (t == DB_REPORT_INBOUND_BY_MONTH)
			ok(rows.n == 12 && strcmp(rows.first[2], "03") == 0 &&
			           strcmp(rows.first[3], "04") == 0 &&
			           strcmp(rows.cell[2], "1 1 1 0") == 0 &&
			           strcmp(rows.cell[3], "0 0 0 1") == 0 &&
			           strcmp(rows.cell[0], "0 0 0 0") == 0,
			   "inbound per month: March %s, April %s (decrypted "
			   "not-decrypted verified verify-failed)",
			   rows.cell[2], rows.cell[3]);
		if (t == DB_REPORT_INBOUND_BY_UNIT)
			ok(rows.n == 2 && strcmp(rows.first[0], "-") == 0 &&
			           strcmp(rows.cell[0], "0 0 0 1") == 0 &&
			           strcmp(rows.first[1], "Diskominfo") == 0 &&
			           strcmp(rows.cell[1], "1 1 1 0") == 0,
			   "inbound per unit of the recipients, each message "
			   "once per unit: %s %s / %s %s",
			   rows.first[0], rows.cell[0], rows.first[1],
			   rows.cell[1]);
		if (t == DB_REPORT_CERTS_BY_KIND)
			ok(rows.n == 3 &&
			           strcmp(rows.first[0], "individual") == 0,
			   "certificates by kind: the three kinds");
	}
	ok(db_report(db, DB_REPORT_TABLES, 0, 1, 1, collect, &rows, err,
	             sizeof(err)) == -1,
	   "no such report table");
}

/* The statement helper itself: parameters, rows, and errors. */
static void helper(const char *path, struct db *db)
{
	struct db_q q;
	long long v = 0;
	struct db *locker = NULL;

	ok(db_get_int(db, "SELECT ?1 + ?2", DB_ARGS(DB_INT(40), DB_INT(2)), &v,
	              err, sizeof(err)) == 1 &&
	           v == 42,
	   "db_get_int with integer parameters");
	/* the casts give PostgreSQL the type a NULL alone does not */
	ok(db_get_int(db,
	              "SELECT CASE WHEN CAST(?1 AS TEXT) IS NULL AND"
	              " CAST(?2 AS BIGINT) IS NULL AND ?3 = 'x' THEN 1 END",
	              DB_ARGS(DB_TEXT(NULL), DB_ID(0), DB_TEXT("x")), &v, err,
	              sizeof(err)) == 1 &&
	           v == 1,
	   "DB_TEXT(NULL) and DB_ID(0) bind SQL NULL");
	ok(db_get_int(db, "SELECT 1 WHERE 1 = 0", DB_NOARGS, &v, err,
	              sizeof(err)) == 0,
	   "no row: 0");
	err[0] = '\0';
	ok(db_run(db, "SELECT nonsense FROM nowhere", DB_NOARGS, err,
	          sizeof(err)) == -1 &&
	           strncmp(err, "database: ", 10) == 0 &&
	           strstr(err, "nowhere"),
	   "bad SQL: -1 and a database error (%s)", err);
	err[0] = '\0';
	ok(db_q_open(&q, db, "SELECT ?", DB_ARGS(DB_INT(1), DB_INT(2)), err,
	             sizeof(err)) == -1 &&
	           strncmp(err, "database: ", 10) == 0,
	   "too many parameters: refused (%s)", err);
	ok(db_q_open(&q, db, "SELECT abs(-9223372036854775807 - ?)",
	             DB_ARGS(DB_INT(1)), err, sizeof(err)) == 0 &&
	           db_q_next(&q) == -1 && db_q_next(&q) == -1 &&
	           db_q_close(&q) == -1 &&
	           (strstr(err, "overflow") || strstr(err, "out of range")),
	   "a step that fails: -1 from next and close (%s)", err);
	ok(db_q_close(NULL) == 0, "db_q_close(NULL)");
	ok(db_get_int(db, "SELECT length('a ? b -- ?''?') + ?1 * ?1 + ?",
	              DB_ARGS(DB_INT(3), DB_INT(1)), &v, err,
	              sizeof(err)) == 1 &&
	           v == 12 + 9 + 1,
	   "'?' in a string is text; ?1 twice, then '?' is the second (%lld)",
	   v);

	/* PostgreSQL URIs: the password refused before anything is asked */
	ok(db_open("postgresql://smime:secret@/smime?host=/nonexistent",
	           DB_READWRITE, &locker, err, sizeof(err)) == -1 &&
	           locker == NULL &&
	           strstr(err, "a password in the URI is refused: put it in "
	                       "~/.pgpass"),
	   "a URI with user:password@ is refused (%s)", err);
	ok(db_open("postgres://smime@/smime?host=/nonexistent&password=x",
	           DB_READWRITE, &locker, err, sizeof(err)) == -1 &&
	           strstr(err, "password in the URI is refused"),
	   "... and with password= (%s)", err);
	ok(db_open("postgresql://smime@/smime?host=/nonexistent", DB_READWRITE,
	           &locker, err, sizeof(err)) == -1 &&
	           strstr(err, "database postgresql://smime@/smime?host="
	                       "/nonexistent: "),
	   "a server that is not there: the URI and libpq's words (%s)", err);

	/* another writer holds the lock: the error says so in words */
	ok(db_exec_sql(db,
	               dialect("PRAGMA busy_timeout = 50",
	                       "SET lock_timeout = 50"),
	               err, sizeof(err)) == 0 &&
	           db_open_raw(path, DB_READWRITE, &locker, err, sizeof(err)) ==
	                   0 &&
	           db_begin(locker, err, sizeof(err)) == 0 &&
	           db_exec_sql(locker,
	                       dialect("SELECT 1",
	                               "LOCK TABLE crls IN EXCLUSIVE MODE"),
	                       err, sizeof(err)) == 0,
	   "another connection takes the write lock (%s)", err);
	ok(db_crl_add(db, "CN=X", 1, 2, 0, err, sizeof(err)) == -1 &&
	           strstr(err, "database: the database is locked"),
	   "a locked database: %s", err);
	db_rollback(locker);
	db_close(locker);
	ok(db_crl_add(db, "CN=X", 1, 2, 0, err, sizeof(err)) == 0,
	   "and works once the lock is gone");
}

/* Make the server drop db's connection (as a restart or a failover
 * would), from a connection of its own.  0 or -1. */
static int drop_connection(const char *path, struct db *db)
{
	struct db *other = NULL;
	long long pid = 0;
	char sql[96];
	int rc;

	if (db_get_int(db, "SELECT pg_backend_pid()", DB_NOARGS, &pid, err,
	               sizeof(err)) != 1 ||
	    db_open_raw(path, DB_READWRITE, &other, err, sizeof(err)) != 0)
		return -1;
	snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%lld)", pid);
	rc = db_exec_sql(other, sql, err, sizeof(err));
	db_close(other);
	usleep(100000); /* the backend is gone by now */
	return rc;
}

/* PostgreSQL: a connection the server dropped is made again by the next
 * statement, kept statements included; one dropped inside a transaction
 * fails that transaction, and says so, until the caller ends it. */
static void reconnect(const char *path, struct db *db)
{
	struct audit_row r = { .at = 1, .action = "admin", .result = "ok" };
	long long v = 0;

	if (!fixture_db_pg()) {
		for (int i = 0; i < 4; i++)
			ok(1,
			   "reconnect %d # skip SQLite has no connection to "
			   "lose",
			   i + 1);
		return;
	}
	ok(db_audit_add(db, &r, err, sizeof(err)) == 0 &&
	           drop_connection(path, db) == 0 &&
	           db_get_int(db, "SELECT 7", DB_NOARGS, &v, err,
	                      sizeof(err)) == 1 &&
	           v == 7,
	   "a dropped connection: the next statement connects again (%s)", err);
	ok(drop_connection(path, db) == 0 &&
	           db_audit_add(db, &r, err, sizeof(err)) == 0 &&
	           raw_int(path, "SELECT count(*) FROM audit WHERE action ="
	                         " 'admin' AND prev_hash = (SELECT hash FROM"
	                         " audit WHERE id = (SELECT max(id) - 1 FROM"
	                         " audit))") == 1,
	   "... the audit writer's kept statements are prepared again (%s)",
	   err);
	err[0] = '\0';
	ok(db_begin(db, err, sizeof(err)) == 0 &&
	           db_crl_add(db, "CN=T", 1, 2, 0, err, sizeof(err)) == 0 &&
	           drop_connection(path, db) == 0 &&
	           db_crl_add(db, "CN=T", 1, 2, 0, err, sizeof(err)) == -1 &&
	           db_crl_add(db, "CN=T", 1, 2, 0, err, sizeof(err)) == -1 &&
	           strstr(err, "connection to the database was lost") &&
	           db_commit(db, err, sizeof(err)) == -1 &&
	           strstr(err, "transaction is rolled back"),
	   "dropped inside a transaction: it fails, and COMMIT says so (%s)",
	   err);
	ok(db_get_int(db, "SELECT count(*) FROM crls WHERE issuer = 'CN=T'",
	              DB_NOARGS, &v, err, sizeof(err)) == 1 &&
	           v == 0,
	   "... nothing of it was written, and the connection works again");
}

int main(void)
{
	const char *p;
	struct db *db;

	fixture_dir("db");

	p = path_of("work.db");
	if (db_open(p, DB_CREATE, &db, err, sizeof(err)) != 0) {
		printf("# %s\n", err);
		return 1;
	}
	certificates(db);
	revoke_many(p, db);
	audit(p, db);
	renewals(db, 1);
	recipients(p, db);
	report(p, db);
	helper(p, db);
	reconnect(p, db);
	db_close(db);

	return fixture_end(tap_done());
}
