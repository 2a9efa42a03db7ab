/* db -- SQLite store: open, versioned schema and migrations, transactions
 * and the statement helpers the db_*.c files share (see db.h, db_int.h). */
#include "db_int.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* db_migrations[i] takes the schema from version i to i + 1. */
const char *const db_migrations[] = {
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
	 * db_audit_chain_existing() in the same transaction. */
	"ALTER TABLE audit ADD COLUMN prev_hash TEXT;"
	"ALTER TABLE audit ADD COLUMN hash TEXT;",
	/* 5 -> 6: inbound rows (issue 13) name the envelope recipients and
	 * the signer's issuer; rows that set either are hashed as v2 (see
	 * db_audit.c), older rows keep their v1 hashes */
	"ALTER TABLE audit ADD COLUMN recipients TEXT;"
	"ALTER TABLE audit ADD COLUMN cert_issuer TEXT;",
	/* 6 -> 7: RFC 3161 anchors of the chain (issue 14): a TSA's token
	 * over the hash of the head row (smimectl audit anchor).  No foreign
	 * key: an anchor outlives a deleted row, so verify can say so.  IF
	 * NOT EXISTS: a database taken back to an older version by hand (as
	 * tests do, dropping the newer columns) may still hold the table. */
	"CREATE TABLE IF NOT EXISTS audit_anchors ("
	"  id INTEGER PRIMARY KEY,"
	"  audit_id INTEGER NOT NULL,"
	"  hash TEXT NOT NULL,"
	"  token BLOB NOT NULL,"
	"  gen_time INTEGER NOT NULL,"
	"  tsa_url TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS audit_anchors_audit_id"
	" ON audit_anchors (audit_id);",
	/* 7 -> 8: where revocation comes from (issue 15): the CRL
	 * distribution points fetched, and OCSP answers kept until their
	 * nextUpdate */
	"CREATE TABLE crl_sources ("
	"  url TEXT PRIMARY KEY,"
	"  issuer TEXT,"
	"  last_modified INTEGER,"
	"  fetched_at INTEGER,"
	"  checked_at INTEGER NOT NULL,"
	"  this_update INTEGER,"
	"  next_update INTEGER,"
	"  status TEXT NOT NULL,"
	"  detail TEXT);"
	"CREATE TABLE ocsp_responses ("
	"  issuer TEXT NOT NULL,"
	"  serial TEXT NOT NULL,"
	"  status TEXT NOT NULL CHECK (status IN ('good','revoked','unknown')),"
	"  revoked_at INTEGER,"
	"  reason TEXT,"
	"  this_update INTEGER NOT NULL,"
	"  next_update INTEGER,"
	"  checked_at INTEGER NOT NULL,"
	"  responder TEXT,"
	"  PRIMARY KEY (issuer, serial));",
};

/* C code run after migrations[i], inside its transaction (NULL: none). */
static int (*const migration_code[])(struct db *, char *, size_t) = {
	NULL, NULL, NULL, NULL, db_audit_chain_existing, NULL, NULL, NULL,
};

_Static_assert(sizeof(db_migrations) / sizeof(db_migrations[0]) ==
                       DB_SCHEMA_VERSION,
               "one migration per schema version");
_Static_assert(sizeof(migration_code) / sizeof(migration_code[0]) ==
                       DB_SCHEMA_VERSION,
               "one migration_code entry per schema version");

#define DB_BUSY_MS 5000

/* The last error of db in words; a lock held elsewhere says so plainly. */
const char *db_errmsg(struct db *db)
{
	if ((sqlite3_errcode(db->h) & 0xff) == SQLITE_BUSY ||
	    (sqlite3_errcode(db->h) & 0xff) == SQLITE_LOCKED)
		return "the database is locked by another process (waited 5 s; "
		       "another smimectl may be running): try again";
	return sqlite3_errmsg(db->h);
}

int db_exec_sql(struct db *db, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;

	if (sqlite3_exec(db->h, sql, NULL, NULL, &msg) != SQLITE_OK) {
		seterr(err, errlen, "database: %s",
		       (sqlite3_errcode(db->h) & 0xff) == SQLITE_BUSY
		               ? db_errmsg(db)
		       : msg ? msg
		             : db_errmsg(db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

int db_version(struct db *db)
{
	long long v = -1;

	if (db_get_int(db, "PRAGMA user_version", DB_NOARGS, &v, NULL, 0) != 1)
		return -1;
	return (int)v;
}

static int migrate(struct db *db, char *err, size_t errlen)
{
	int v = db_version(db);
	char sql[64];

	if (v < 0)
		return seterr(err, errlen, "database: %s", db_errmsg(db));
	if (v > DB_SCHEMA_VERSION)
		return seterr(err, errlen,
		              "database schema version %d is newer than this "
		              "program (%d)",
		              v, DB_SCHEMA_VERSION);
	for (; v < DB_SCHEMA_VERSION; v++) {
		if (db_exec_sql(db, "BEGIN IMMEDIATE", err, errlen) != 0)
			return -1;
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
		if (db_exec_sql(db, db_migrations[v], err, errlen) != 0 ||
		    (migration_code[v] &&
		     migration_code[v](db, err, errlen) != 0) ||
		    db_exec_sql(db, sql, err, errlen) != 0) {
			db_rollback(db);
			return -1;
		}
		if (db_exec_sql(db, "COMMIT", err, errlen) != 0)
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
		if (db_exec_sql(db, "PRAGMA journal_mode = WAL", err, errlen) !=
		            0 ||
		    migrate(db, err, errlen) != 0) {
			umask(old);
			db_close(db);
			return -1;
		}
		umask(old);
	}
	if (db_exec_sql(db,
	                "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL",
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
	return db_exec_sql(db, "BEGIN IMMEDIATE", err, errlen);
}

int db_commit(struct db *db, char *err, size_t errlen)
{
	return db_exec_sql(db, "COMMIT", err, errlen);
}

void db_rollback(struct db *db)
{
	sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
}

/* ---- statement helpers (db_int.h) ----------------------------------- */

static int q_fail(struct db_q *q)
{
	q->failed = 1;
	return seterr(q->err, q->errlen, "database: %s", db_errmsg(q->db));
}

static int q_bind(struct db_q *q, const struct db_val *args, int nargs)
{
	for (int i = 0; i < nargs; i++) {
		int rc;
		switch (args[i].type) {
		case DB_VAL_INT:
			rc = sqlite3_bind_int64(q->st, i + 1,
			                        (sqlite3_int64)args[i].i);
			break;
		case DB_VAL_TEXT:
			rc = sqlite3_bind_text(q->st, i + 1, args[i].s, -1,
			                       SQLITE_TRANSIENT);
			break;
		default:
			rc = sqlite3_bind_null(q->st, i + 1);
			break;
		}
		if (rc != SQLITE_OK)
			return q_fail(q);
	}
	return 0;
}

static void q_init(struct db_q *q, struct db *db, char *err, size_t errlen)
{
	memset(q, 0, sizeof(*q));
	q->db = db;
	q->err = err;
	q->errlen = errlen;
}

int db_q_open(struct db_q *q, struct db *db, const char *sql,
              const struct db_val *args, int nargs, char *err, size_t errlen)
{
	q_init(q, db, err, errlen);
	if (sqlite3_prepare_v2(db->h, sql, -1, &q->st, NULL) != SQLITE_OK) {
		q_fail(q);
		sqlite3_finalize(q->st);
		q->st = NULL;
		return -1;
	}
	if (q_bind(q, args, nargs) != 0) {
		db_q_close(q);
		return -1;
	}
	return 0;
}

int db_q_reuse(struct db_q *q, struct db *db, sqlite3_stmt **slot,
               const char *sql, const struct db_val *args, int nargs, char *err,
               size_t errlen)
{
	q_init(q, db, err, errlen);
	if (*slot == NULL &&
	    sqlite3_prepare_v2(db->h, sql, -1, slot, NULL) != SQLITE_OK) {
		q_fail(q);
		sqlite3_finalize(*slot);
		*slot = NULL;
		return -1;
	}
	q->st = *slot;
	q->keep = 1;
	if (q_bind(q, args, nargs) != 0) {
		db_q_close(q);
		return -1;
	}
	return 0;
}

int db_q_next(struct db_q *q)
{
	int rc;

	if (q->failed)
		return -1;
	rc = sqlite3_step(q->st);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return q_fail(q);
}

long long db_q_int(const struct db_q *q, int col)
{
	return (long long)sqlite3_column_int64(q->st, col);
}

const char *db_q_text(const struct db_q *q, int col)
{
	return (const char *)sqlite3_column_text(q->st, col);
}

char *db_q_dup(const struct db_q *q, int col)
{
	const char *t = db_q_text(q, col);

	return t ? strdup(t) : NULL;
}

int db_q_ncols(const struct db_q *q)
{
	return sqlite3_column_count(q->st);
}

int db_q_close(struct db_q *q)
{
	if (q == NULL || q->st == NULL)
		return q && q->failed ? -1 : 0;
	if (q->keep) {
		sqlite3_reset(q->st);
		sqlite3_clear_bindings(q->st);
	} else
		sqlite3_finalize(q->st);
	q->st = NULL;
	return q->failed ? -1 : 0;
}

int db_run(struct db *db, const char *sql, const struct db_val *args, int nargs,
           char *err, size_t errlen)
{
	struct db_q q;

	if (db_q_open(&q, db, sql, args, nargs, err, errlen) != 0)
		return -1;
	db_q_next(&q);
	return db_q_close(&q);
}

int db_get_int(struct db *db, const char *sql, const struct db_val *args,
               int nargs, long long *out, char *err, size_t errlen)
{
	struct db_q q;
	int rc;

	if (db_q_open(&q, db, sql, args, nargs, err, errlen) != 0)
		return -1;
	rc = db_q_next(&q);
	if (rc > 0 && out)
		*out = db_q_int(&q, 0);
	if (db_q_close(&q) != 0)
		return -1;
	return rc;
}

long long db_last_id(struct db *db)
{
	return (long long)sqlite3_last_insert_rowid(db->h);
}

int db_changes(struct db *db)
{
	return sqlite3_changes(db->h);
}

int db_atomic(struct db *db, int (*fn)(struct db *, void *, char *, size_t),
              void *arg, char *err, size_t errlen)
{
	int own = sqlite3_get_autocommit(db->h), rc;

	if (own && db_begin(db, err, errlen) != 0)
		return -1;
	rc = fn(db, arg, err, errlen);
	if (own && rc == 0 && db_commit(db, err, errlen) != 0)
		rc = -1;
	if (own && rc != 0)
		db_rollback(db);
	return rc;
}

/* ---- rows as structs --------------------------------------------------- */

const char *db_cols_list(const struct db_col *cols, size_t n,
                         const char *prefix, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s%s",
		                         i ? ", " : "", prefix, cols[i].name);
	return buf;
}

void db_q_fill(const struct db_q *q, int first, const struct db_col *cols,
               size_t n, void *obj, int dup)
{
	for (size_t i = 0; i < n; i++) {
		char *field = (char *)obj + cols[i].off;
		int col = first + (int)i;
		switch (cols[i].type) {
		case DB_COL_INT:
			*(long long *)field = db_q_int(q, col);
			break;
		case DB_COL_TIME:
			*(time_t *)field = (time_t)db_q_int(q, col);
			break;
		case DB_COL_TEXT:
			*(char **)field = dup ? db_q_dup(q, col)
			                      : (char *)db_q_text(q, col);
			break;
		}
	}
}

void db_cols_free(const struct db_col *cols, size_t n, void *obj, size_t size)
{
	if (obj == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		if (cols[i].type == DB_COL_TEXT)
			free(*(char **)((char *)obj + cols[i].off));
	memset(obj, 0, size);
}
