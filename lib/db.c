/* db -- SQLite store with versioned schema (see db.h). */
#include "db.h"
#include "certstore.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <sqlite3.h>

struct db {
	sqlite3 *h;
	sqlite3_stmt *audit_last; /* prepared once: the writer's hot path */
	sqlite3_stmt *audit_ins;
};

static int audit_chain_existing(struct db *db, char *err, size_t errlen);

/* Migrations: migrations[i] takes the schema from version i to i + 1. */
static const char *const migrations[] = {
	/* 0 -> 1 */
	"CREATE TABLE certificates ("
	"  id INTEGER PRIMARY KEY,"
	"  kind TEXT NOT NULL CHECK (kind IN ('individual','role','system')),"
	"  mailbox TEXT NOT NULL,"
	"  subject TEXT NOT NULL,"
	"  issuer TEXT NOT NULL,"
	"  serial TEXT NOT NULL,"
	"  fingerprint TEXT NOT NULL UNIQUE,"
	"  not_before INTEGER NOT NULL,"
	"  not_after INTEGER NOT NULL,"
	"  status TEXT NOT NULL DEFAULT 'active'"
	"    CHECK (status IN ('active','superseded','revoked')),"
	"  key_backend TEXT NOT NULL,"
	"  key_location TEXT NOT NULL,"
	"  secret_file TEXT,"
	"  cert_pem TEXT NOT NULL,"
	"  chain_pem TEXT NOT NULL DEFAULT '',"
	"  created_at INTEGER NOT NULL,"
	"  revoked_at INTEGER,"
	"  revocation_reason TEXT);"
	"CREATE INDEX certificates_serial ON certificates (serial);"
	"CREATE INDEX certificates_mailbox ON certificates (mailbox);"
	"CREATE TABLE mailboxes ("
	"  address TEXT PRIMARY KEY,"
	"  cert_id INTEGER NOT NULL REFERENCES certificates (id),"
	"  kind TEXT NOT NULL,"
	"  updated_at INTEGER NOT NULL);"
	"CREATE TABLE mailbox_history ("
	"  id INTEGER PRIMARY KEY,"
	"  address TEXT NOT NULL,"
	"  cert_id INTEGER,"
	"  event TEXT NOT NULL,"
	"  detail TEXT,"
	"  actor TEXT,"
	"  at INTEGER NOT NULL);"
	"CREATE TABLE crls ("
	"  id INTEGER PRIMARY KEY,"
	"  issuer TEXT NOT NULL,"
	"  this_update INTEGER,"
	"  next_update INTEGER,"
	"  entries INTEGER NOT NULL,"
	"  imported_at INTEGER NOT NULL);"
	"CREATE TABLE audit ("
	"  id INTEGER PRIMARY KEY,"
	"  at INTEGER NOT NULL,"
	"  queue_id TEXT,"
	"  message_id TEXT,"
	"  from_addr TEXT,"
	"  action TEXT NOT NULL,"
	"  cert_serial TEXT,"
	"  digest TEXT,"
	"  result TEXT);"
	"CREATE INDEX audit_at ON audit (at);",
	/* 1 -> 2: owners (Pasal 7, 10-13) and alert bookkeeping (Pasal 14) */
	"ALTER TABLE certificates ADD COLUMN owner TEXT;"
	"ALTER TABLE certificates ADD COLUMN nip TEXT;"
	"ALTER TABLE certificates ADD COLUMN unit TEXT;"
	"ALTER TABLE certificates ADD COLUMN contact TEXT;"
	"CREATE TABLE alerts_sent ("
	"  cert_id INTEGER NOT NULL REFERENCES certificates (id),"
	"  threshold INTEGER NOT NULL,"
	"  sent_at INTEGER NOT NULL,"
	"  PRIMARY KEY (cert_id, threshold));",
	/* 2 -> 3: pending renewals (Pasal 14): key and CSR before the CA
	 * issues the certificate */
	"CREATE TABLE renewals ("
	"  id INTEGER PRIMARY KEY,"
	"  mailbox TEXT NOT NULL,"
	"  kind TEXT NOT NULL,"
	"  old_cert_id INTEGER REFERENCES certificates (id),"
	"  key_backend TEXT NOT NULL,"
	"  key_location TEXT NOT NULL,"
	"  secret_file TEXT,"
	"  pubkey_sha256 TEXT NOT NULL,"
	"  csr_pem TEXT NOT NULL,"
	"  actor TEXT,"
	"  created_at INTEGER NOT NULL,"
	"  completed_cert_id INTEGER REFERENCES certificates (id),"
	"  completed_at INTEGER);"
	"CREATE INDEX renewals_pubkey ON renewals (pubkey_sha256);",
	/* 3 -> 4: recipient certificates for encryption (issue 5), and every
	 * CRL entry, so a certificate stored after its CRL is still caught.
	 * Serials already revoked through a CRL are carried over. */
	"CREATE TABLE recipient_certs ("
	"  id INTEGER PRIMARY KEY,"
	"  address TEXT NOT NULL,"
	"  subject TEXT NOT NULL,"
	"  issuer TEXT NOT NULL,"
	"  serial TEXT NOT NULL,"
	"  fingerprint TEXT NOT NULL,"
	"  not_before INTEGER NOT NULL,"
	"  not_after INTEGER NOT NULL,"
	"  status TEXT NOT NULL DEFAULT 'active'"
	"    CHECK (status IN ('active','revoked')),"
	"  source TEXT NOT NULL CHECK (source IN ('import','harvest')),"
	"  cert_pem TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL,"
	"  revoked_at INTEGER,"
	"  revocation_reason TEXT,"
	"  UNIQUE (address, fingerprint));"
	"CREATE INDEX recipient_certs_address ON recipient_certs (address);"
	"CREATE INDEX recipient_certs_serial ON recipient_certs (serial);"
	"CREATE TABLE revoked_serials ("
	"  issuer TEXT NOT NULL,"
	"  serial TEXT NOT NULL,"
	"  reason TEXT,"
	"  revoked_at INTEGER,"
	"  PRIMARY KEY (issuer, serial));"
	"INSERT OR IGNORE INTO revoked_serials (issuer, serial, reason,"
	"  revoked_at) SELECT issuer, serial, 'crl', revoked_at"
	"  FROM certificates WHERE status = 'revoked'"
	"  AND revocation_reason = 'crl';",
	/* 4 -> 5: the audit log becomes a hash chain (issue 6, evidence for
	 * Pasal 3 and 8).  Rows already there are chained in id order by
	 * audit_chain_existing() in the same transaction. */
	"ALTER TABLE audit ADD COLUMN prev_hash TEXT;"
	"ALTER TABLE audit ADD COLUMN hash TEXT;",
};

/* C code run after migrations[i], inside its transaction (NULL: none). */
static int (*const migration_code[])(struct db *, char *, size_t) = {
	NULL, NULL, NULL, NULL, audit_chain_existing,
};

_Static_assert(sizeof(migrations) / sizeof(migrations[0]) == DB_SCHEMA_VERSION,
               "one migration per schema version");
_Static_assert(sizeof(migration_code) / sizeof(migration_code[0]) ==
                       DB_SCHEMA_VERSION,
               "one migration_code entry per schema version");

#define DB_BUSY_MS 5000

/* The last error of db in words; a lock held elsewhere says so plainly. */
static const char *dberr(struct db *db)
{
	if ((sqlite3_errcode(db->h) & 0xff) == SQLITE_BUSY ||
	    (sqlite3_errcode(db->h) & 0xff) == SQLITE_LOCKED)
		return "the database is locked by another process (waited 5 s; "
		       "another smimectl may be running): try again";
	return sqlite3_errmsg(db->h);
}

static int exec(struct db *db, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;

	if (sqlite3_exec(db->h, sql, NULL, NULL, &msg) != SQLITE_OK) {
		seterr(err, errlen, "database: %s",
		       (sqlite3_errcode(db->h) & 0xff) == SQLITE_BUSY
		               ? dberr(db)
		       : msg ? msg
		             : dberr(db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

int db_version(struct db *db)
{
	sqlite3_stmt *st;
	int v = -1;

	if (sqlite3_prepare_v2(db->h, "PRAGMA user_version", -1, &st, NULL) ==
	    SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			v = sqlite3_column_int(st, 0);
		sqlite3_finalize(st);
	}
	return v;
}

static int migrate(struct db *db, char *err, size_t errlen)
{
	int v = db_version(db);
	char sql[64];

	if (v < 0)
		return seterr(err, errlen, "database: %s", dberr(db));
	if (v > DB_SCHEMA_VERSION)
		return seterr(err, errlen,
		              "database schema version %d is newer than this "
		              "program (%d)",
		              v, DB_SCHEMA_VERSION);
	for (; v < DB_SCHEMA_VERSION; v++) {
		if (exec(db, "BEGIN IMMEDIATE", err, errlen) != 0)
			return -1;
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
		if (exec(db, migrations[v], err, errlen) != 0 ||
		    (migration_code[v] &&
		     migration_code[v](db, err, errlen) != 0) ||
		    exec(db, sql, err, errlen) != 0) {
			db_rollback(db);
			return -1;
		}
		if (exec(db, "COMMIT", err, errlen) != 0)
			return -1;
	}
	return 0;
}

int db_open(const char *path, enum db_open_mode mode, struct db **out,
            char *err, size_t errlen)
{
	struct db *db;
	int flags, v;

	*out = NULL;
	if (mode != DB_CREATE && access(path, F_OK) != 0)
		return seterr(err, errlen,
		              "database %s: %s (run \"smimectl init\" first)",
		              path, strerror(errno));
	db = calloc(1, sizeof(*db));
	if (db == NULL)
		return seterr(err, errlen, "out of memory");
	flags = SQLITE_OPEN_FULLMUTEX |
	        (mode == DB_READONLY ? SQLITE_OPEN_READONLY
	                             : SQLITE_OPEN_READWRITE) |
	        (mode == DB_CREATE ? SQLITE_OPEN_CREATE : 0);
	if (sqlite3_open_v2(path, &db->h, flags, NULL) != SQLITE_OK) {
		seterr(err, errlen, "database %s: %s", path,
		       db->h ? sqlite3_errmsg(db->h) : "cannot open");
		db_close(db);
		return -1;
	}
	sqlite3_busy_timeout(db->h, DB_BUSY_MS);
	sqlite3_extended_result_codes(db->h, 1);
	if (mode == DB_CREATE) {
		mode_t old = umask(077);
		if (exec(db, "PRAGMA journal_mode = WAL", err, errlen) != 0 ||
		    migrate(db, err, errlen) != 0) {
			umask(old);
			db_close(db);
			return -1;
		}
		umask(old);
	}
	if (exec(db, "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL",
	         err, errlen) != 0) {
		db_close(db);
		return -1;
	}
	v = db_version(db);
	if (v != DB_SCHEMA_VERSION) {
		if (v < 0)
			seterr(err, errlen, "database %s: %s", path,
			       sqlite3_errmsg(db->h));
		else
			seterr(err, errlen,
			       "database %s has schema version %d, this "
			       "program needs %d (run \"smimectl init\" to "
			       "migrate)",
			       path, v, DB_SCHEMA_VERSION);
		db_close(db);
		return -1;
	}
	*out = db;
	return 0;
}

void db_close(struct db *db)
{
	if (db == NULL)
		return;
	sqlite3_finalize(db->audit_last);
	sqlite3_finalize(db->audit_ins);
	sqlite3_close_v2(db->h);
	free(db);
}

int db_begin(struct db *db, char *err, size_t errlen)
{
	return exec(db, "BEGIN IMMEDIATE", err, errlen);
}

int db_commit(struct db *db, char *err, size_t errlen)
{
	return exec(db, "COMMIT", err, errlen);
}

void db_rollback(struct db *db)
{
	sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
}

static sqlite3_stmt *prep(struct db *db, const char *sql, char *err,
                          size_t errlen)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK) {
		seterr(err, errlen, "database: %s", dberr(db));
		return NULL;
	}
	return st;
}

static int step_done(struct db *db, sqlite3_stmt *st, char *err, size_t errlen)
{
	int rc = sqlite3_step(st);

	sqlite3_finalize(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return seterr(err, errlen, "database: %s", dberr(db));
	return 0;
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

void db_cert_from_info(struct db_cert *dc, const struct cert_info *ci)
{
	memset(dc, 0, sizeof(*dc));
	dc->subject = ci->subject;
	dc->issuer = ci->issuer;
	dc->serial = ci->serial;
	dc->fingerprint = ci->fingerprint;
	dc->not_before = ci->not_before;
	dc->not_after = ci->not_after;
}

void db_cert_clear(struct db_cert *c)
{
	free(c->kind);
	free(c->mailbox);
	free(c->subject);
	free(c->issuer);
	free(c->serial);
	free(c->fingerprint);
	free(c->status);
	free(c->key_backend);
	free(c->key_location);
	free(c->secret_file);
	free(c->cert_pem);
	free(c->chain_pem);
	free(c->revocation_reason);
	free(c->owner);
	free(c->nip);
	free(c->unit);
	free(c->contact);
	memset(c, 0, sizeof(*c));
}

int db_cert_exists(struct db *db, const char *fingerprint)
{
	sqlite3_stmt *st =
	        prep(db, "SELECT 1 FROM certificates WHERE fingerprint = ?",
	             NULL, 0);
	int found;

	if (st == NULL)
		return 0;
	bind_text(st, 1, fingerprint);
	found = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return found;
}

int db_cert_add(struct db *db, struct db_cert *c, char *err, size_t errlen)
{
	sqlite3_stmt *st =
	        prep(db,
	             "INSERT INTO certificates (kind, mailbox, subject, "
	             "issuer, serial,"
	             " fingerprint, not_before, not_after, status, key_backend,"
	             " key_location, secret_file, cert_pem, chain_pem, "
	             "created_at,"
	             " owner, nip, unit, contact)"
	             " VALUES (?,?,?,?,?,?,?,?,'active',?,?,?,?,?,?,?,?,?,?)",
	             err, errlen);

	if (st == NULL)
		return -1;
	bind_text(st, 1, c->kind);
	bind_text(st, 2, c->mailbox);
	bind_text(st, 3, c->subject);
	bind_text(st, 4, c->issuer);
	bind_text(st, 5, c->serial);
	bind_text(st, 6, c->fingerprint);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)c->not_before);
	sqlite3_bind_int64(st, 8, (sqlite3_int64)c->not_after);
	bind_text(st, 9, c->key_backend);
	bind_text(st, 10, c->key_location);
	bind_text(st, 11, c->secret_file);
	bind_text(st, 12, c->cert_pem);
	bind_text(st, 13, c->chain_pem ? c->chain_pem : "");
	sqlite3_bind_int64(st, 14, (sqlite3_int64)time(NULL));
	bind_text(st, 15, c->owner);
	bind_text(st, 16, c->nip);
	bind_text(st, 17, c->unit);
	bind_text(st, 18, c->contact);
	if (step_done(db, st, err, errlen) != 0)
		return -1;
	c->id = sqlite3_last_insert_rowid(db->h);
	return 0;
}

static int history(struct db *db, const char *address, long long cert_id,
                   const char *event, const char *detail, const char *actor,
                   char *err, size_t errlen)
{
	sqlite3_stmt *st = prep(db,
	                        "INSERT INTO mailbox_history (address, cert_id,"
	                        " event, detail, actor, at)"
	                        " VALUES (?,?,?,?,?,?)",
	                        err, errlen);

	if (st == NULL)
		return -1;
	bind_text(st, 1, address);
	if (cert_id > 0)
		sqlite3_bind_int64(st, 2, cert_id);
	else
		sqlite3_bind_null(st, 2);
	bind_text(st, 3, event);
	bind_text(st, 4, detail);
	bind_text(st, 5, actor);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)time(NULL));
	return step_done(db, st, err, errlen);
}

int db_map(struct db *db, const char *address, long long cert_id,
           const char *kind, const char *actor, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	long long old = 0;

	st = prep(db, "SELECT cert_id FROM mailboxes WHERE address = ?", err,
	          errlen);
	if (st == NULL)
		return -1;
	bind_text(st, 1, address);
	if (sqlite3_step(st) == SQLITE_ROW)
		old = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (old > 0 && old != cert_id) {
		st = prep(db,
		          "UPDATE certificates SET status = 'superseded'"
		          " WHERE id = ? AND status = 'active'",
		          err, errlen);
		if (st == NULL)
			return -1;
		sqlite3_bind_int64(st, 1, old);
		if (step_done(db, st, err, errlen) != 0 ||
		    history(db, address, old, "superseded", NULL, actor, err,
		            errlen) != 0)
			return -1;
	}
	st = prep(db,
	          "INSERT INTO mailboxes (address, cert_id, kind, updated_at)"
	          " VALUES (?,?,?,?) ON CONFLICT (address) DO UPDATE SET"
	          " cert_id = excluded.cert_id, kind = excluded.kind,"
	          " updated_at = excluded.updated_at",
	          err, errlen);
	if (st == NULL)
		return -1;
	bind_text(st, 1, address);
	sqlite3_bind_int64(st, 2, cert_id);
	bind_text(st, 3, kind);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)time(NULL));
	if (step_done(db, st, err, errlen) != 0)
		return -1;
	return history(db, address, cert_id, "mapped", kind, actor, err,
	               errlen);
}

#define CERT_COLS                                                        \
	"c.id, c.kind, c.mailbox, c.subject, c.issuer, c.serial,"        \
	" c.fingerprint, c.not_before, c.not_after, c.status,"           \
	" c.key_backend, c.key_location, c.secret_file, c.cert_pem,"     \
	" c.chain_pem, c.created_at, c.revoked_at, c.revocation_reason," \
	" c.owner, c.nip, c.unit, c.contact"

static char *col_dup(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t ? strdup((const char *)t) : NULL;
}

static void row_to_cert(sqlite3_stmt *st, struct db_cert *c)
{
	c->id = sqlite3_column_int64(st, 0);
	c->kind = col_dup(st, 1);
	c->mailbox = col_dup(st, 2);
	c->subject = col_dup(st, 3);
	c->issuer = col_dup(st, 4);
	c->serial = col_dup(st, 5);
	c->fingerprint = col_dup(st, 6);
	c->not_before = (time_t)sqlite3_column_int64(st, 7);
	c->not_after = (time_t)sqlite3_column_int64(st, 8);
	c->status = col_dup(st, 9);
	c->key_backend = col_dup(st, 10);
	c->key_location = col_dup(st, 11);
	c->secret_file = col_dup(st, 12);
	c->cert_pem = col_dup(st, 13);
	c->chain_pem = col_dup(st, 14);
	c->created_at = (time_t)sqlite3_column_int64(st, 15);
	c->revoked_at = (time_t)sqlite3_column_int64(st, 16);
	c->revocation_reason = col_dup(st, 17);
	c->owner = col_dup(st, 18);
	c->nip = col_dup(st, 19);
	c->unit = col_dup(st, 20);
	c->contact = col_dup(st, 21);
}

static int each_cert(struct db *db, const char *sql, db_cert_fn fn, void *arg,
                     char *err, size_t errlen)
{
	sqlite3_stmt *st = prep(db, sql, err, errlen);
	int rc;

	if (st == NULL)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct db_cert c;
		const unsigned char *addr = sqlite3_column_text(st, 22);
		int stop;
		memset(&c, 0, sizeof(c));
		row_to_cert(st, &c);
		stop = fn(arg, (const char *)addr, &c);
		db_cert_clear(&c);
		if (stop)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		seterr(err, errlen, "database: %s", dberr(db));
		sqlite3_finalize(st);
		return -1;
	}
	sqlite3_finalize(st);
	return 0;
}

int db_mappings(struct db *db, db_cert_fn fn, void *arg, char *err,
                size_t errlen)
{
	return each_cert(db,
	                 "SELECT " CERT_COLS ", m.address FROM mailboxes m"
	                 " JOIN certificates c ON c.id = m.cert_id"
	                 " ORDER BY m.address",
	                 fn, arg, err, errlen);
}

int db_certs(struct db *db, db_cert_fn fn, void *arg, char *err, size_t errlen)
{
	return each_cert(db,
	                 "SELECT " CERT_COLS ", m.address FROM certificates c"
	                 " LEFT JOIN mailboxes m ON m.cert_id = c.id"
	                 " ORDER BY c.mailbox, c.id DESC",
	                 fn, arg, err, errlen);
}

/* The recipient half of db_revoke: adds the rows changed to *count. */
static int revoke_recipients(struct db *db, const char *issuer,
                             const char *serial, const char *reason,
                             time_t when, const char *actor, int *count,
                             char *err, size_t errlen)
{
	sqlite3_stmt *st =
	        prep(db,
	             "UPDATE recipient_certs SET status = 'revoked',"
	             " revoked_at = ?1, revocation_reason = ?2"
	             " WHERE serial = ?3 AND (?4 IS NULL OR issuer = ?4)"
	             " AND status != 'revoked'"
	             " RETURNING address",
	             err, errlen);
	char **addrs = NULL;
	int rc, n = 0;

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)when);
	bind_text(st, 2, reason);
	bind_text(st, 3, serial);
	bind_text(st, 4, issuer);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		char **p = realloc(addrs, (size_t)(n + 1) * sizeof(*addrs));
		if (p == NULL) {
			rc = SQLITE_NOMEM;
			break;
		}
		addrs = p;
		addrs[n++] = col_dup(st, 0);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		seterr(err, errlen, "database: %s",
		       rc == SQLITE_NOMEM ? "out of memory" : dberr(db));
		rc = -1;
	} else
		rc = 0;
	for (int i = 0; i < n; i++) {
		if (rc == 0)
			rc = history(db, addrs[i], 0, "recipient-revoked",
			             serial, actor, err, errlen);
		free(addrs[i]);
	}
	free(addrs);
	if (rc == 0)
		*count += n;
	return rc;
}

int db_revoke(struct db *db, const char *issuer, const char *serial,
              const char *reason, time_t when, const char *actor, int *count,
              char *err, size_t errlen)
{
	sqlite3_stmt *st =
	        prep(db,
	             "UPDATE certificates SET status = 'revoked',"
	             " revoked_at = ?, revocation_reason = ?"
	             " WHERE serial = ? AND (? IS NULL OR issuer = ?)"
	             " AND status != 'revoked'"
	             " RETURNING mailbox, id",
	             err, errlen);
	int rc;

	*count = 0;
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)when);
	bind_text(st, 2, reason);
	bind_text(st, 3, serial);
	bind_text(st, 4, issuer);
	bind_text(st, 5, issuer);
	struct rev {
		char *mailbox;
		long long id;
	} revs[64];
	int n = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n < 64) {
			revs[n].mailbox = col_dup(st, 0);
			revs[n].id = sqlite3_column_int64(st, 1);
			n++;
		}
		(*count)++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		for (int i = 0; i < n; i++)
			free(revs[i].mailbox);
		return seterr(err, errlen, "database: %s", dberr(db));
	}
	rc = 0;
	for (int i = 0; i < n; i++) {
		if (rc == 0)
			rc = history(db, revs[i].mailbox, revs[i].id, "revoked",
			             reason, actor, err, errlen);
		free(revs[i].mailbox);
	}
	if (rc != 0)
		return rc;
	return revoke_recipients(db, issuer, serial, reason, when, actor, count,
	                         err, errlen);
}

int db_crl_add(struct db *db, const char *issuer, time_t this_update,
               time_t next_update, int entries, char *err, size_t errlen)
{
	sqlite3_stmt *st = prep(db,
	                        "INSERT INTO crls (issuer, this_update,"
	                        " next_update, entries, imported_at)"
	                        " VALUES (?,?,?,?,?)",
	                        err, errlen);

	if (st == NULL)
		return -1;
	bind_text(st, 1, issuer);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)this_update);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)next_update);
	sqlite3_bind_int(st, 4, entries);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)time(NULL));
	return step_done(db, st, err, errlen);
}

/* ---- the audit hash chain (schema 5) ---------------------------------
 * hash = SHA-256 over
 *   "smime-milter-audit-v1\n"
 *   field(prev_hash) field(id) field(at) field(queue_id) field(message_id)
 *   field(from_addr) field(action) field(cert_serial) field(digest)
 *   field(result)
 * where field(NULL) = 'N' and field(value) = tag || 8-byte big-endian
 * length || bytes, tag 'I' for an integer (decimal ASCII), 'T' for text,
 * 'B' for a blob, 'R' for a real ("%.17g").  Hashes are lower-case hex; the
 * first row's prev_hash is 64 zeros. */

struct hval {
	int type; /* SQLITE_NULL, SQLITE_INTEGER, SQLITE_TEXT, ... */
	const void *p;
	size_t n;
	long long i;
	double d;
};

#define AUDIT_HASH_COLS 9 /* id .. result */
static const char audit_hash_tag[] = "smime-milter-audit-v1\n";

static void hash_field(EVP_MD_CTX *md, const struct hval *v)
{
	unsigned char hdr[9];
	char num[40];
	const void *p = v->p;
	size_t n = v->n;

	switch (v->type) {
	case SQLITE_NULL:
		EVP_DigestUpdate(md, "N", 1);
		return;
	case SQLITE_INTEGER:
		hdr[0] = 'I';
		n = (size_t)snprintf(num, sizeof(num), "%lld", v->i);
		p = num;
		break;
	case SQLITE_FLOAT:
		hdr[0] = 'R';
		n = (size_t)snprintf(num, sizeof(num), "%.17g", v->d);
		p = num;
		break;
	case SQLITE_BLOB:
		hdr[0] = 'B';
		break;
	default:
		hdr[0] = 'T';
		break;
	}
	for (int k = 0; k < 8; k++)
		hdr[1 + k] =
		        (unsigned char)((unsigned long long)n >> (56 - 8 * k));
	EVP_DigestUpdate(md, hdr, sizeof(hdr));
	if (n)
		EVP_DigestUpdate(md, p, n);
}

/* hex (65 bytes) = the hash of prev and the row's columns. */
static int audit_hash(const struct hval *prev, const struct hval *cols,
                      char *hex)
{
	static const char digits[] = "0123456789abcdef";
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int dl = 0;
	EVP_MD_CTX *md = EVP_MD_CTX_new();

	if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(md);
		return -1;
	}
	EVP_DigestUpdate(md, audit_hash_tag, sizeof(audit_hash_tag) - 1);
	hash_field(md, prev);
	for (int i = 0; i < AUDIT_HASH_COLS; i++)
		hash_field(md, &cols[i]);
	if (EVP_DigestFinal_ex(md, d, &dl) != 1 || dl != 32) {
		EVP_MD_CTX_free(md);
		return -1;
	}
	EVP_MD_CTX_free(md);
	for (unsigned i = 0; i < dl; i++) {
		hex[2 * i] = digits[d[i] >> 4];
		hex[2 * i + 1] = digits[d[i] & 15];
	}
	hex[64] = '\0';
	return 0;
}

static const char audit_zero_hash[] =
        "0000000000000000000000000000000000000000000000000000000000000000";

static struct hval hv_text(const char *s)
{
	struct hval v = { SQLITE_NULL, NULL, 0, 0, 0 };

	if (s) {
		v.type = SQLITE_TEXT;
		v.p = s;
		v.n = strlen(s);
	}
	return v;
}

static struct hval hv_int(long long i)
{
	struct hval v = { SQLITE_INTEGER, NULL, 0, i, 0 };
	return v;
}

/* Column i of st as a hash value (valid until st moves on). */
static struct hval hv_col(sqlite3_stmt *st, int i)
{
	struct hval v = { sqlite3_column_type(st, i), NULL, 0, 0, 0 };

	switch (v.type) {
	case SQLITE_INTEGER:
		v.i = sqlite3_column_int64(st, i);
		break;
	case SQLITE_FLOAT:
		v.d = sqlite3_column_double(st, i);
		break;
	case SQLITE_BLOB:
		v.p = sqlite3_column_blob(st, i);
		v.n = (size_t)sqlite3_column_bytes(st, i);
		break;
	case SQLITE_TEXT:
		v.p = sqlite3_column_text(st, i);
		v.n = (size_t)sqlite3_column_bytes(st, i);
		break;
	default:
		break;
	}
	return v;
}

#define AUDIT_COLS                                                       \
	"id, at, queue_id, message_id, from_addr, action, cert_serial, " \
	"digest, result"

int db_audit_add(struct db *db, const struct audit_row *r, char *err,
                 size_t errlen)
{
	struct hval cols[AUDIT_HASH_COLS], prev;
	char prevhex[65], hash[65];
	long long id = 1;
	int own = sqlite3_get_autocommit(db->h), rc;

	/* the chain is read and extended in one write transaction, so two
	 * writers (two milter queues, smimectl) cannot fork it */
	if (own && db_begin(db, err, errlen) != 0)
		return -1;
	if (db->audit_last == NULL &&
	    (db->audit_last = prep(db,
	                           "SELECT id, hash FROM audit"
	                           " ORDER BY id DESC LIMIT 1",
	                           err, errlen)) == NULL)
		goto fail;
	if (db->audit_ins == NULL &&
	    (db->audit_ins =
	             prep(db,
	                  "INSERT INTO audit (" AUDIT_COLS ", prev_hash, hash)"
	                  " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
	                  err, errlen)) == NULL)
		goto fail;
	snprintf(prevhex, sizeof(prevhex), "%s", audit_zero_hash);
	rc = sqlite3_step(db->audit_last);
	if (rc == SQLITE_ROW) {
		const unsigned char *h = sqlite3_column_text(db->audit_last, 1);
		id = sqlite3_column_int64(db->audit_last, 0) + 1;
		/* a row without a hash (written around this program) stays
		 * a broken link that verify reports; chain on from zeros */
		if (h)
			snprintf(prevhex, sizeof(prevhex), "%s",
			         (const char *)h);
	}
	sqlite3_reset(db->audit_last);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		seterr(err, errlen, "database: %s", dberr(db));
		goto fail;
	}
	cols[0] = hv_int(id);
	cols[1] = hv_int((long long)(r->at ? r->at : time(NULL)));
	cols[2] = hv_text(r->queue_id);
	cols[3] = hv_text(r->message_id);
	cols[4] = hv_text(r->from_addr);
	cols[5] = hv_text(r->action);
	cols[6] = hv_text(r->cert_serial);
	cols[7] = hv_text(r->digest);
	cols[8] = hv_text(r->result);
	prev = hv_text(prevhex);
	if (audit_hash(&prev, cols, hash) != 0) {
		seterr(err, errlen, "audit: SHA-256 failed");
		goto fail;
	}
	sqlite3_bind_int64(db->audit_ins, 1, (sqlite3_int64)id);
	sqlite3_bind_int64(db->audit_ins, 2, (sqlite3_int64)cols[1].i);
	bind_text(db->audit_ins, 3, r->queue_id);
	bind_text(db->audit_ins, 4, r->message_id);
	bind_text(db->audit_ins, 5, r->from_addr);
	bind_text(db->audit_ins, 6, r->action);
	bind_text(db->audit_ins, 7, r->cert_serial);
	bind_text(db->audit_ins, 8, r->digest);
	bind_text(db->audit_ins, 9, r->result);
	bind_text(db->audit_ins, 10, prevhex);
	bind_text(db->audit_ins, 11, hash);
	rc = sqlite3_step(db->audit_ins);
	sqlite3_reset(db->audit_ins);
	sqlite3_clear_bindings(db->audit_ins);
	if (rc != SQLITE_DONE) {
		seterr(err, errlen, "database: %s", dberr(db));
		goto fail;
	}
	if (own && db_commit(db, err, errlen) != 0)
		goto fail;
	return 0;
fail:
	if (own)
		db_rollback(db);
	return -1;
}

/* Migration 4 -> 5: chain the rows already there, in id order. */
static int audit_chain_existing(struct db *db, char *err, size_t errlen)
{
	sqlite3_stmt *sel = prep(db,
	                         "SELECT " AUDIT_COLS " FROM audit"
	                         " ORDER BY id",
	                         err, errlen);
	sqlite3_stmt *upd = prep(db,
	                         "UPDATE audit SET prev_hash = ?,"
	                         " hash = ? WHERE id = ?",
	                         err, errlen);
	char prevhex[65], hash[65];
	int rc = -1, s;

	if (sel == NULL || upd == NULL)
		goto out;
	snprintf(prevhex, sizeof(prevhex), "%s", audit_zero_hash);
	while ((s = sqlite3_step(sel)) == SQLITE_ROW) {
		struct hval cols[AUDIT_HASH_COLS], prev = hv_text(prevhex);
		for (int i = 0; i < AUDIT_HASH_COLS; i++)
			cols[i] = hv_col(sel, i);
		if (audit_hash(&prev, cols, hash) != 0) {
			seterr(err, errlen, "audit: SHA-256 failed");
			goto out;
		}
		bind_text(upd, 1, prevhex);
		bind_text(upd, 2, hash);
		sqlite3_bind_int64(upd, 3, sqlite3_column_int64(sel, 0));
		s = sqlite3_step(upd);
		sqlite3_reset(upd);
		if (s != SQLITE_DONE) {
			seterr(err, errlen, "database: %s", dberr(db));
			goto out;
		}
		memcpy(prevhex, hash, sizeof(hash));
	}
	if (s != SQLITE_DONE) {
		seterr(err, errlen, "database: %s", dberr(db));
		goto out;
	}
	rc = 0;
out:
	sqlite3_finalize(sel);
	sqlite3_finalize(upd);
	return rc;
}

static int is_hash(const unsigned char *s, int n)
{
	if (s == NULL || n != 64)
		return 0;
	for (int i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

int db_audit_verify(struct db *db, long long anchor_id, const char *anchor_hash,
                    struct db_audit_check *out, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	char expect[65], hash[65];
	long long previd = 0;
	int s, rc = 0;

	memset(out, 0, sizeof(*out));
	snprintf(expect, sizeof(expect), "%s", audit_zero_hash);
	snprintf(out->last_hash, sizeof(out->last_hash), "%s", audit_zero_hash);
	/* one read transaction: a consistent snapshot while the milter
	 * appends */
	if (exec(db, "BEGIN", err, errlen) != 0)
		return -1;
	st = prep(db,
	          "SELECT " AUDIT_COLS ", prev_hash, hash FROM audit"
	          " ORDER BY id",
	          err, errlen);
	if (st == NULL) {
		db_rollback(db);
		return -1;
	}
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		struct hval cols[AUDIT_HASH_COLS], prev = hv_col(st, 9);
		const unsigned char *ph = sqlite3_column_text(st, 9);
		const unsigned char *h = sqlite3_column_text(st, 10);
		int phn = sqlite3_column_bytes(st, 9), hn;
		long long id = sqlite3_column_int64(st, 0);

		hn = sqlite3_column_bytes(st, 10);
		for (int i = 0; i < AUDIT_HASH_COLS; i++)
			cols[i] = hv_col(st, i);
		out->bad_id = id;
		out->prev_id = previd;
		if (!is_hash(h, hn)) {
			out->problem = DB_AUDIT_HASH_MISSING;
			rc = 1;
			break;
		}
		if (!is_hash(ph, phn)) {
			out->problem = DB_AUDIT_PREV_MISSING;
			rc = 1;
			break;
		}
		if (audit_hash(&prev, cols, hash) != 0) {
			sqlite3_finalize(st);
			db_rollback(db);
			return seterr(err, errlen, "audit: SHA-256 failed");
		}
		if (memcmp(hash, h, 64) != 0) {
			out->problem = DB_AUDIT_CHANGED;
			rc = 1;
			break;
		}
		if (memcmp(ph, expect, 64) != 0) {
			out->problem = DB_AUDIT_LINK;
			rc = 1;
			break;
		}
		if (anchor_id > 0 && id == anchor_id &&
		    (anchor_hash == NULL || strlen(anchor_hash) != 64 ||
		     strncasecmp(anchor_hash, (const char *)h, 64) != 0)) {
			out->problem = DB_AUDIT_ANCHOR_CHANGED;
			rc = 1;
			break;
		}
		memcpy(expect, h, 64);
		memcpy(out->last_hash, h, 64);
		out->last_id = id;
		out->rows++;
		previd = id;
	}
	if (rc == 0 && s != SQLITE_DONE) {
		seterr(err, errlen, "database: %s", dberr(db));
		rc = -1;
	}
	if (rc == 0)
		out->bad_id = out->prev_id = 0;
	if (rc == 0 && anchor_id > 0 && out->last_id < anchor_id) {
		/* walked to the end without meeting it */
		out->bad_id = anchor_id;
		out->prev_id = out->last_id;
		out->problem = DB_AUDIT_ANCHOR_MISSING;
		rc = 1;
	}
	sqlite3_finalize(st);
	db_rollback(db);
	return rc;
}

int db_cert_find(struct db *db, const char *spec, struct db_cert *out,
                 char *err, size_t errlen)
{
	sqlite3_stmt *st = prep(db,
	                        "SELECT " CERT_COLS ", NULL FROM certificates c"
	                        " WHERE c.fingerprint = upper(?1)"
	                        " OR c.serial = upper(?1)"
	                        " OR CAST(c.id AS TEXT) = ?1 ORDER BY c.id",
	                        err, errlen);
	int rc, n = 0;
	char ids[128] = "";

	memset(out, 0, sizeof(*out));
	if (st == NULL)
		return -1;
	bind_text(st, 1, spec);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		size_t used = strlen(ids);
		if (n++ == 0)
			row_to_cert(st, out);
		snprintf(ids + used, sizeof(ids) - used, "%s%lld",
		         used ? ", id " : "id ",
		         (long long)sqlite3_column_int64(st, 0));
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		db_cert_clear(out);
		return seterr(err, errlen, "database: %s", dberr(db));
	}
	if (n > 1) {
		db_cert_clear(out);
		return seterr(err, errlen,
		              "'%s' is ambiguous (%s): give the fingerprint",
		              spec, ids);
	}
	return n;
}

int db_unmap(struct db *db, const char *address, const char *actor, char *err,
             size_t errlen)
{
	sqlite3_stmt *st = prep(db,
	                        "DELETE FROM mailboxes WHERE address = ?"
	                        " RETURNING cert_id",
	                        err, errlen);
	long long id = 0;
	int rc, found = 0;

	if (st == NULL)
		return -1;
	bind_text(st, 1, address);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		id = sqlite3_column_int64(st, 0);
		found = 1;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return seterr(err, errlen, "database: %s", dberr(db));
	if (!found)
		return 0;
	if (history(db, address, id, "unmapped", NULL, actor, err, errlen) != 0)
		return -1;
	return 1;
}

int db_revoke_id(struct db *db, long long id, const char *reason, time_t when,
                 const char *actor, char *err, size_t errlen)
{
	sqlite3_stmt *st = prep(db,
	                        "UPDATE certificates SET status = 'revoked',"
	                        " revoked_at = ?, revocation_reason = ?"
	                        " WHERE id = ? AND status != 'revoked'"
	                        " RETURNING mailbox",
	                        err, errlen);
	char *mailbox = NULL;
	int rc, changed = 0;

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)when);
	bind_text(st, 2, reason);
	sqlite3_bind_int64(st, 3, id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		free(mailbox);
		mailbox = col_dup(st, 0);
		changed = 1;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		free(mailbox);
		return seterr(err, errlen, "database: %s", dberr(db));
	}
	if (changed && history(db, mailbox, id, "revoked", reason, actor, err,
	                       errlen) != 0)
		changed = -1;
	free(mailbox);
	return changed;
}

int db_crls(struct db *db, db_crl_fn fn, void *arg, char *err, size_t errlen)
{
	sqlite3_stmt *st = prep(db,
	                        "SELECT issuer, max(next_update) FROM crls"
	                        " GROUP BY issuer ORDER BY issuer",
	                        err, errlen);
	int rc;

	if (st == NULL)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (fn(arg, (const char *)sqlite3_column_text(st, 0),
		       (time_t)sqlite3_column_int64(st, 1)))
			break;
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		sqlite3_finalize(st);
		return seterr(err, errlen, "database: %s", dberr(db));
	}
	sqlite3_finalize(st);
	return 0;
}

int db_history(struct db *db, const char *address, long long cert_id,
               db_history_fn fn, void *arg, char *err, size_t errlen)
{
	sqlite3_stmt *st =
	        prep(db,
	             "SELECT at, address, cert_id, event, detail, actor"
	             " FROM mailbox_history"
	             " WHERE (?1 IS NOT NULL AND address = ?1)"
	             " OR (?2 > 0 AND cert_id = ?2) ORDER BY id",
	             err, errlen);
	int rc;

	if (st == NULL)
		return -1;
	bind_text(st, 1, address);
	sqlite3_bind_int64(st, 2, cert_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (fn(arg, (time_t)sqlite3_column_int64(st, 0),
		       (const char *)sqlite3_column_text(st, 1),
		       sqlite3_column_int64(st, 2),
		       (const char *)sqlite3_column_text(st, 3),
		       (const char *)sqlite3_column_text(st, 4),
		       (const char *)sqlite3_column_text(st, 5)))
			break;
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return seterr(err, errlen, "database: %s", dberr(db));
	return 0;
}

int db_alert_sent(struct db *db, long long cert_id, int threshold, char *err,
                  size_t errlen)
{
	sqlite3_stmt *st = prep(db,
	                        "SELECT 1 FROM alerts_sent WHERE cert_id = ?"
	                        " AND threshold = ?",
	                        err, errlen);
	int rc;

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, cert_id);
	sqlite3_bind_int(st, 2, threshold);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return seterr(err, errlen, "database: %s", dberr(db));
	return rc == SQLITE_ROW;
}

int db_alert_record(struct db *db, long long cert_id, int threshold, char *err,
                    size_t errlen)
{
	sqlite3_stmt *st = prep(db,
	                        "INSERT OR IGNORE INTO alerts_sent (cert_id,"
	                        " threshold, sent_at) VALUES (?,?,?)",
	                        err, errlen);

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, cert_id);
	sqlite3_bind_int(st, 2, threshold);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)time(NULL));
	return step_done(db, st, err, errlen);
}

void db_renewal_clear(struct db_renewal *r)
{
	free(r->mailbox);
	free(r->kind);
	free(r->key_backend);
	free(r->key_location);
	free(r->secret_file);
	free(r->pubkey_sha256);
	memset(r, 0, sizeof(*r));
}

int db_renewal_add(struct db *db, struct db_renewal *r, const char *csr_pem,
                   long long old_cert_id, const char *actor, char *err,
                   size_t errlen)
{
	sqlite3_stmt *st =
	        prep(db,
	             "INSERT INTO renewals (mailbox, kind, old_cert_id,"
	             " key_backend, key_location, secret_file,"
	             " pubkey_sha256, csr_pem, actor, created_at)"
	             " VALUES (?,?,?,?,?,?,?,?,?,?)",
	             err, errlen);

	if (st == NULL)
		return -1;
	bind_text(st, 1, r->mailbox);
	bind_text(st, 2, r->kind);
	if (old_cert_id > 0)
		sqlite3_bind_int64(st, 3, old_cert_id);
	else
		sqlite3_bind_null(st, 3);
	bind_text(st, 4, r->key_backend);
	bind_text(st, 5, r->key_location);
	bind_text(st, 6, r->secret_file);
	bind_text(st, 7, r->pubkey_sha256);
	bind_text(st, 8, csr_pem);
	bind_text(st, 9, actor);
	sqlite3_bind_int64(st, 10, (sqlite3_int64)time(NULL));
	if (step_done(db, st, err, errlen) != 0)
		return -1;
	r->id = sqlite3_last_insert_rowid(db->h);
	return history(db, r->mailbox, old_cert_id, "renewal",
	               "new key and CSR", actor, err, errlen);
}

int db_renewal_find(struct db *db, const char *pubkey_sha256,
                    struct db_renewal *out, char *err, size_t errlen)
{
	sqlite3_stmt *st = prep(db,
	                        "SELECT id, mailbox, kind, key_backend,"
	                        " key_location, secret_file, pubkey_sha256"
	                        " FROM renewals WHERE pubkey_sha256 = ?"
	                        " AND completed_cert_id IS NULL"
	                        " ORDER BY id DESC LIMIT 1",
	                        err, errlen);
	int rc;

	memset(out, 0, sizeof(*out));
	if (st == NULL)
		return -1;
	bind_text(st, 1, pubkey_sha256);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		out->id = sqlite3_column_int64(st, 0);
		out->mailbox = col_dup(st, 1);
		out->kind = col_dup(st, 2);
		out->key_backend = col_dup(st, 3);
		out->key_location = col_dup(st, 4);
		out->secret_file = col_dup(st, 5);
		out->pubkey_sha256 = col_dup(st, 6);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return seterr(err, errlen, "database: %s", dberr(db));
	return rc == SQLITE_ROW;
}

int db_renewal_complete(struct db *db, long long id, long long cert_id,
                        char *err, size_t errlen)
{
	sqlite3_stmt *st = prep(db,
	                        "UPDATE renewals SET completed_cert_id = ?,"
	                        " completed_at = ? WHERE id = ?",
	                        err, errlen);

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, cert_id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)time(NULL));
	sqlite3_bind_int64(st, 3, id);
	return step_done(db, st, err, errlen);
}

int db_query(struct db *db, const char *sql, const char *const *params,
             int nparams, db_row_fn fn, void *arg, char *err, size_t errlen)
{
	sqlite3_stmt *st = prep(db, sql, err, errlen);
	const char *cols[32];
	int rc, n;

	if (st == NULL)
		return -1;
	for (int i = 0; i < nparams; i++)
		bind_text(st, i + 1, params[i]);
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
		return seterr(err, errlen, "database: %s", dberr(db));
	return 0;
}

/* ---- recipient certificates ------------------------------------------ */

void db_recipient_clear(struct db_recipient *r)
{
	if (r == NULL)
		return;
	free(r->address);
	free(r->subject);
	free(r->issuer);
	free(r->serial);
	free(r->fingerprint);
	free(r->status);
	free(r->source);
	free(r->cert_pem);
	memset(r, 0, sizeof(*r));
}

int db_recipient_add(struct db *db, const struct db_recipient *r,
                     const char *actor, int *added, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	char *address;
	int rc;

	*added = 0;
	if (r->address == NULL || r->fingerprint == NULL || r->serial == NULL ||
	    r->cert_pem == NULL)
		return seterr(err, errlen,
		              "recipient certificate without address, serial, "
		              "fingerprint or PEM");
	if (r->source == NULL || (strcmp(r->source, "import") != 0 &&
	                          strcmp(r->source, "harvest") != 0))
		return seterr(err, errlen,
		              "recipient certificate source must be import or "
		              "harvest, not '%s'",
		              r->source ? r->source : "(none)");
	address = str_lower(strdup(r->address));
	if (address == NULL)
		return seterr(err, errlen, "out of memory");
	st = prep(db,
	          "INSERT INTO recipient_certs (address, subject, issuer, "
	          "serial,"
	          " fingerprint, not_before, not_after, status, source, "
	          "cert_pem,"
	          " created_at) VALUES "
	          "(?,?,?,upper(?),upper(?),?,?,'active',?,?,?)"
	          " ON CONFLICT (address, fingerprint) DO NOTHING",
	          err, errlen);
	if (st == NULL) {
		free(address);
		return -1;
	}
	bind_text(st, 1, address);
	bind_text(st, 2, r->subject);
	bind_text(st, 3, r->issuer);
	bind_text(st, 4, r->serial);
	bind_text(st, 5, r->fingerprint);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)r->not_before);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)r->not_after);
	bind_text(st, 8, r->source);
	bind_text(st, 9, r->cert_pem);
	sqlite3_bind_int64(st, 10, (sqlite3_int64)time(NULL));
	rc = step_done(db, st, err, errlen);
	if (rc == 0 && sqlite3_changes(db->h) > 0) {
		*added = 1;
		rc = history(db, address, 0,
		             strcmp(r->source, "harvest") == 0
		                     ? "recipient-harvest"
		                     : "recipient-import",
		             r->serial, actor, err, errlen);
	}
	free(address);
	return rc;
}

#define RECIPIENT_COLS                                                   \
	"id, address, subject, issuer, serial, fingerprint, not_before," \
	" not_after, status, source, cert_pem, created_at"

int db_recipients(struct db *db, const char *address, int active_only,
                  db_recipient_fn fn, void *arg, char *err, size_t errlen)
{
	sqlite3_stmt *st = prep(db,
	                        "SELECT " RECIPIENT_COLS " FROM recipient_certs"
	                        " WHERE (?1 IS NULL OR address = lower(?1))"
	                        " AND (?2 = 0 OR status = 'active')"
	                        " ORDER BY address, not_before DESC, id DESC",
	                        err, errlen);
	int rc;

	if (st == NULL)
		return -1;
	bind_text(st, 1, address);
	sqlite3_bind_int(st, 2, active_only ? 1 : 0);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct db_recipient r;
		int stop;
		r.id = sqlite3_column_int64(st, 0);
		r.address = (char *)sqlite3_column_text(st, 1);
		r.subject = (char *)sqlite3_column_text(st, 2);
		r.issuer = (char *)sqlite3_column_text(st, 3);
		r.serial = (char *)sqlite3_column_text(st, 4);
		r.fingerprint = (char *)sqlite3_column_text(st, 5);
		r.not_before = (time_t)sqlite3_column_int64(st, 6);
		r.not_after = (time_t)sqlite3_column_int64(st, 7);
		r.status = (char *)sqlite3_column_text(st, 8);
		r.source = (char *)sqlite3_column_text(st, 9);
		r.cert_pem = (char *)sqlite3_column_text(st, 10);
		r.created_at = (time_t)sqlite3_column_int64(st, 11);
		stop = fn(arg, &r);
		if (stop)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		seterr(err, errlen, "database: %s", dberr(db));
		sqlite3_finalize(st);
		return -1;
	}
	sqlite3_finalize(st);
	return 0;
}

/* How spec matches, for db_recipient_remove: rows by id, rows by serial or
 * fingerprint that are another certificate than the id's, and distinct
 * certificates matched by serial or fingerprint.  Returns 0 or -1. */
static int recipient_match_counts(struct db *db, const char *spec, int *by_id,
                                  int *by_other, int *certs, char *err,
                                  size_t errlen)
{
	sqlite3_stmt *st =
	        prep(db,
	             "SELECT (SELECT count(*) FROM recipient_certs"
	             "        WHERE CAST(id AS TEXT) = ?1),"
	             " (SELECT count(*) FROM recipient_certs"
	             "  WHERE (serial = upper(?1) OR fingerprint = upper(?1))"
	             "  AND fingerprint NOT IN (SELECT fingerprint FROM "
	             "recipient_certs"
	             "                          WHERE CAST(id AS TEXT) = ?1)),"
	             " (SELECT count(DISTINCT fingerprint) FROM recipient_certs"
	             "  WHERE serial = upper(?1) OR fingerprint = upper(?1))",
	             err, errlen);
	int rc;

	if (st == NULL)
		return -1;
	bind_text(st, 1, spec);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*by_id = sqlite3_column_int(st, 0);
		*by_other = sqlite3_column_int(st, 1);
		*certs = sqlite3_column_int(st, 2);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return seterr(err, errlen, "database: %s", dberr(db));
	return 0;
}

int db_recipient_remove(struct db *db, const char *spec, const char *actor,
                        int *count, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	struct gone {
		char *address, *serial;
	} *gone = NULL;
	int rc, n = 0, by_address = spec && strchr(spec, '@') != NULL;

	*count = 0;
	if (spec == NULL || *spec == '\0')
		return seterr(err, errlen, "no recipient certificate named");
	if (!by_address) {
		int by_id = 0, by_other = 0, certs = 0;
		if (recipient_match_counts(db, spec, &by_id, &by_other, &certs,
		                           err, errlen) != 0)
			return -1;
		if (by_id > 0 && by_other > 0)
			return seterr(err, errlen,
			              "'%s' is ambiguous (the id of one "
			              "recipient "
			              "certificate and the serial of another): "
			              "give "
			              "the fingerprint",
			              spec);
		if (certs > 1)
			return seterr(err, errlen,
			              "serial '%s' is shared by %d recipient "
			              "certificates (of different issuers): "
			              "give "
			              "the fingerprint",
			              spec, certs);
	}
	st = prep(db,
	          by_address
	                  ? "DELETE FROM recipient_certs WHERE address = "
	                    "lower(?1)"
	                    " RETURNING address, serial"
	                  : "DELETE FROM recipient_certs WHERE CAST(id AS "
	                    "TEXT) = ?1"
	                    " OR serial = upper(?1) OR fingerprint = upper(?1)"
	                    " RETURNING address, serial",
	          err, errlen);
	if (st == NULL)
		return -1;
	bind_text(st, 1, spec);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct gone *p = realloc(gone, (size_t)(n + 1) * sizeof(*gone));
		if (p == NULL) {
			rc = SQLITE_NOMEM;
			break;
		}
		gone = p;
		gone[n].address = col_dup(st, 0);
		gone[n].serial = col_dup(st, 1);
		n++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		seterr(err, errlen, "database: %s",
		       rc == SQLITE_NOMEM ? "out of memory" : dberr(db));
		rc = -1;
	} else
		rc = 0;
	for (int i = 0; i < n; i++) {
		if (rc == 0)
			rc = history(db, gone[i].address, 0, "recipient-remove",
			             gone[i].serial, actor, err, errlen);
		free(gone[i].address);
		free(gone[i].serial);
	}
	free(gone);
	if (rc == 0)
		*count = n;
	return rc;
}

int db_serial_revoked(struct db *db, const char *issuer, const char *serial,
                      char *err, size_t errlen)
{
	sqlite3_stmt *st = prep(db,
	                        "SELECT 1 FROM revoked_serials"
	                        " WHERE issuer = ? AND serial = upper(?)",
	                        err, errlen);
	int rc;

	if (st == NULL)
		return -1;
	bind_text(st, 1, issuer);
	bind_text(st, 2, serial);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return seterr(err, errlen, "database: %s", dberr(db));
	return rc == SQLITE_ROW;
}

int db_serial_revoke_add(struct db *db, const char *issuer, const char *serial,
                         const char *reason, time_t when, char *err,
                         size_t errlen)
{
	sqlite3_stmt *st;

	if (issuer == NULL || serial == NULL)
		return seterr(err, errlen,
		              "CRL entry without issuer or serial");
	st = prep(db,
	          "INSERT INTO revoked_serials (issuer, serial, reason,"
	          " revoked_at) VALUES (?,upper(?),?,?)"
	          " ON CONFLICT (issuer, serial) DO NOTHING",
	          err, errlen);
	if (st == NULL)
		return -1;
	bind_text(st, 1, issuer);
	bind_text(st, 2, serial);
	bind_text(st, 3, reason);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)when);
	return step_done(db, st, err, errlen);
}
