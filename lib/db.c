/* db -- the store: open (SQLite path or PostgreSQL URI), versioned schema
 * and migrations, transactions and the statement helpers the db_*.c files
 * share (see db.h, db_int.h), over the backend of db_sqlite.c or
 * db_pg.c. */
#include "db_int.h"
#include "util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* db_migrations[i] takes the schema from version i to i + 1.  The text is
 * SQLite's DDL; PostgreSQL runs the generic translation of db_pg.c
 * (INTEGER -> BIGINT, INTEGER PRIMARY KEY -> an identity column, BLOB ->
 * BYTEA), so every migration below is also PostgreSQL's, table for table:
 * none needs text of its own.  Keep new ones to that common subset. */
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
	"INSERT INTO revoked_serials (issuer, serial, reason,"
	"  revoked_at) SELECT issuer, serial, 'crl', revoked_at"
	"  FROM certificates WHERE status = 'revoked'"
	"  AND revocation_reason = 'crl' ON CONFLICT DO NOTHING;",
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
	/* 8 -> 9: one audit chain per node (issue 16): each row names the
	 * node that wrote it, and prev_hash is the previous row of that
	 * node.  Rows already there get node '' and keep their hashes (v1,
	 * v2), so the chain of schema 8 verifies unchanged as the chain of
	 * node ''; rows of a named node are hashed as v3, the node
	 * included.  An anchor stamps one chain: it gets its row's node.
	 * PostgreSQL's id sequence is moved past the ids written by hand
	 * before (db_audit_id_sync): two nodes take ids from it at once. */
	"ALTER TABLE audit ADD COLUMN node TEXT NOT NULL DEFAULT '';"
	"CREATE INDEX audit_node_id ON audit (node, id);"
	"ALTER TABLE audit_anchors ADD COLUMN node TEXT NOT NULL DEFAULT '';",
};

/* C code run after migrations[i], inside its transaction (NULL: none). */
static int (*const migration_code[])(struct db *, char *, size_t) = {
	NULL,
	NULL,
	NULL,
	NULL,
	db_audit_chain_existing,
	NULL,
	NULL,
	NULL,
	db_audit_id_sync,
};

_Static_assert(sizeof(db_migrations) / sizeof(db_migrations[0]) ==
                       DB_SCHEMA_VERSION,
               "one migration per schema version");
_Static_assert(sizeof(migration_code) / sizeof(migration_code[0]) ==
                       DB_SCHEMA_VERSION,
               "one migration_code entry per schema version");

/* The backend of target. */
static const struct db_ops *ops_of(const char *target)
{
	return db_target_is_pg(target) ? &db_pg_ops : &db_sqlite_ops;
}

int db_target_is_pg(const char *target)
{
	return target && (strncmp(target, "postgresql://", 13) == 0 ||
	                  strncmp(target, "postgres://", 11) == 0);
}

int db_is_pg(const struct db *db)
{
	return db && db->ops == &db_pg_ops;
}

/* The last error of db in words; a lock held elsewhere says so plainly. */
const char *db_errmsg(struct db *db)
{
	return db->ops->errmsg(db);
}

int db_exec_sql(struct db *db, const char *sql, char *err, size_t errlen)
{
	if (db->ops->exec(db, sql) != 0)
		return seterr(err, errlen, "database: %s", db_errmsg(db));
	return 0;
}

int db_exec_ddl(struct db *db, const char *sql, char *err, size_t errlen)
{
	char *text = db->ops->ddl ? db->ops->ddl(sql) : NULL;
	int rc;

	if (db->ops->ddl && text == NULL)
		return seterr(err, errlen, "out of memory");
	rc = db_exec_sql(db, text ? text : sql, err, errlen);
	free(text);
	return rc;
}

int db_version(struct db *db)
{
	return db->ops->version(db);
}

int db_set_version(struct db *db, int version, char *err, size_t errlen)
{
	if (db->ops->set_version(db, version) != 0)
		return seterr(err, errlen, "database: %s", db_errmsg(db));
	return 0;
}

/* One migration step inside its transaction, unless another process made
 * it first (read again under the lock): 0 or -1. */
static int migrate_step(struct db *db, int to, char *err, size_t errlen)
{
	int v;

	if (db->ops->migrate_lock &&
	    db_exec_sql(db, db->ops->migrate_lock, err, errlen) != 0)
		return -1;
	if ((v = db_version(db)) < 0)
		return seterr(err, errlen, "database: %s", db_errmsg(db));
	if (v >= to)
		return 0;
	if (db_exec_ddl(db, db_migrations[v], err, errlen) != 0 ||
	    (migration_code[v] && migration_code[v](db, err, errlen) != 0))
		return -1;
	return db_set_version(db, v + 1, err, errlen);
}

int db_migrate_to(struct db *db, int version, char *err, size_t errlen)
{
	int v = db_version(db);

	if (v < 0)
		return seterr(err, errlen, "database: %s", db_errmsg(db));
	if (v > DB_SCHEMA_VERSION)
		return seterr(err, errlen,
		              "database schema version %d is newer than this "
		              "program (%d)",
		              v, DB_SCHEMA_VERSION);
	if (version > DB_SCHEMA_VERSION)
		version = DB_SCHEMA_VERSION;
	for (; v < version; v++) {
		if (db_begin(db, err, errlen) != 0)
			return -1;
		if (migrate_step(db, v + 1, err, errlen) != 0) {
			db_rollback(db);
			return -1;
		}
		if (db_commit(db, err, errlen) != 0)
			return -1;
	}
	return 0;
}

/* The node name db_open_raw gives new connections (db_node_default_set),
 * under its lock: snapshots are built in threads of their own. */
static pthread_mutex_t node_lock = PTHREAD_MUTEX_INITIALIZER;
static char node_default[DB_NODE_MAX + 1];

void db_node_default_set(const char *name)
{
	pthread_mutex_lock(&node_lock);
	snprintf(node_default, sizeof(node_default), "%s", name ? name : "");
	pthread_mutex_unlock(&node_lock);
}

int db_set_node(struct db *db, const char *name, char *err, size_t errlen)
{
	if (name && strlen(name) > DB_NODE_MAX)
		return seterr(err, errlen,
		              "node name longer than %d bytes: %.40s...",
		              DB_NODE_MAX, name);
	snprintf(db->node, sizeof(db->node), "%s", name ? name : "");
	return 0;
}

const char *db_node(const struct db *db)
{
	return db ? db->node : "";
}

int db_open_raw(const char *target, enum db_open_mode mode, struct db **out,
                char *err, size_t errlen)
{
	struct db *db;

	*out = NULL;
	if (target == NULL || *target == '\0')
		return seterr(err, errlen, "database: no path or URI given");
	db = calloc(1, sizeof(*db));
	if (db == NULL)
		return seterr(err, errlen, "out of memory");
	db->ops = ops_of(target);
	pthread_mutex_lock(&node_lock);
	memcpy(db->node, node_default, sizeof(db->node));
	pthread_mutex_unlock(&node_lock);
	if (db->ops->open(db, target, mode, err, errlen) != 0) {
		free(db);
		return -1;
	}
	*out = db;
	return 0;
}

int db_open(const char *path, enum db_open_mode mode, struct db **out,
            char *err, size_t errlen)
{
	struct db *db;
	int v;

	if (db_open_raw(path, mode, &db, err, errlen) != 0)
		return -1;
	if (mode == DB_CREATE &&
	    db_migrate_to(db, DB_SCHEMA_VERSION, err, errlen) != 0) {
		db_close(db);
		return -1;
	}
	v = db_version(db);
	if (v != DB_SCHEMA_VERSION) {
		if (v < 0)
			seterr(err, errlen, "database %s: %s", path,
			       db_errmsg(db));
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
	db->ops->finalize(db->audit_last);
	db->ops->finalize(db->audit_ins);
	db->ops->finalize(db->audit_lock);
	db->ops->finalize(db->audit_id);
	db->ops->close(db);
	free(db);
}

int db_begin(struct db *db, char *err, size_t errlen)
{
	db->chain_known = 0;
	return db_exec_sql(db, db->ops->begin_write, err, errlen);
}

int db_begin_read(struct db *db, char *err, size_t errlen)
{
	db->chain_known = 0;
	return db_exec_sql(db, db->ops->begin_read, err, errlen);
}

int db_commit(struct db *db, char *err, size_t errlen)
{
	db->chain_known = 0;
	return db_exec_sql(db, "COMMIT", err, errlen);
}

void db_rollback(struct db *db)
{
	db->chain_known = 0;
	if (db->ops->in_tx(db))
		db->ops->exec(db, "ROLLBACK");
}

int db_lock_writers(struct db *db, const char *table, char *err, size_t errlen)
{
	char sql[128];

	if (db->ops->lock_writers == NULL)
		return 0;
	snprintf(sql, sizeof(sql), db->ops->lock_writers, table);
	return db_exec_sql(db, sql, err, errlen);
}

/* ---- statement helpers (db_int.h) ----------------------------------- */

static int q_fail(struct db_q *q)
{
	q->failed = 1;
	return seterr(q->err, q->errlen, "database: %s", db_errmsg(q->db));
}

static void q_init(struct db_q *q, struct db *db, char *err, size_t errlen)
{
	memset(q, 0, sizeof(*q));
	q->db = db;
	q->err = err;
	q->errlen = errlen;
}

/* Prepare into *slot unless it holds a statement, then bind. */
static int q_start(struct db_q *q, struct db_stmt **slot, int keep,
                   const char *sql, const struct db_val *args, int nargs)
{
	const struct db_ops *o = q->db->ops;

	if (*slot == NULL && o->prepare(q->db, sql, keep, slot) != 0) {
		q_fail(q);
		o->finalize(*slot);
		*slot = NULL;
		return -1;
	}
	q->st = *slot;
	q->keep = keep;
	if (o->bind(q->st, args, nargs) != 0) {
		q_fail(q);
		db_q_close(q);
		return -1;
	}
	return 0;
}

int db_q_open(struct db_q *q, struct db *db, const char *sql,
              const struct db_val *args, int nargs, char *err, size_t errlen)
{
	struct db_stmt *st = NULL;

	q_init(q, db, err, errlen);
	return q_start(q, &st, 0, sql, args, nargs);
}

int db_q_reuse(struct db_q *q, struct db *db, struct db_stmt **slot,
               const char *sql, const struct db_val *args, int nargs, char *err,
               size_t errlen)
{
	q_init(q, db, err, errlen);
	return q_start(q, slot, 1, sql, args, nargs);
}

int db_q_next(struct db_q *q)
{
	int rc;

	if (q->failed)
		return -1;
	rc = q->db->ops->step(q->st);
	if (rc >= 0)
		return rc;
	return q_fail(q);
}

long long db_q_int(const struct db_q *q, int col)
{
	return q->db->ops->col_int(q->st, col);
}

const char *db_q_text(const struct db_q *q, int col)
{
	return q->db->ops->col_text(q->st, col);
}

char *db_q_dup(const struct db_q *q, int col)
{
	const char *t = db_q_text(q, col);

	return t ? strdup(t) : NULL;
}

int db_q_ncols(const struct db_q *q)
{
	return q->db->ops->ncols(q->st);
}

enum db_val_type db_q_type(const struct db_q *q, int col)
{
	return q->db->ops->col_type(q->st, col);
}

const void *db_q_blob(const struct db_q *q, int col, size_t *n)
{
	return q->db->ops->col_blob(q->st, col, n);
}

double db_q_real(const struct db_q *q, int col)
{
	return q->db->ops->col_real(q->st, col);
}

int db_q_close(struct db_q *q)
{
	if (q == NULL || q->st == NULL)
		return q && q->failed ? -1 : 0;
	if (q->keep)
		q->db->ops->reset(q->st);
	else
		q->db->ops->finalize(q->st);
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
	return db->ops->last_id(db);
}

int db_changes(struct db *db)
{
	return db->ops->changes(db);
}

int db_atomic(struct db *db, int (*fn)(struct db *, void *, char *, size_t),
              void *arg, char *err, size_t errlen)
{
	int own = !db->ops->in_tx(db), rc;

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

/* ---- run-once jobs and notices (db.h) ----------------------------------- */

long long db_job_key(const char *name)
{
	static const char prefix[] = "smime-milter job ";
	unsigned long long h = 14695981039346656037ULL; /* FNV-1a 64 */

	for (const char *p = prefix; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	for (const char *p = name; p && *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return (long long)h;
}

/* A job name fit for a file name and a log line: 0 or -1. */
static int job_name_ok(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > 64)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') ||
		      (name[i] >= '0' && name[i] <= '9') || name[i] == ' ' ||
		      name[i] == '_' || name[i] == '-'))
			return -1;
	return 0;
}

int db_job_lock(struct db *db, const char *name, int *got, char *err,
                size_t errlen)
{
	*got = 0;
	if (job_name_ok(name) != 0)
		return seterr(err, errlen, "job lock: bad job name \"%s\"",
		              name ? name : "");
	if (db->ops->job_lock(db, name, db_job_key(name), got) != 0)
		return seterr(err, errlen, "database: job lock %s: %s", name,
		              db->msg); /* the op's words, both backends */
	return 0;
}

void db_job_unlock(struct db *db, const char *name)
{
	if (db != NULL && name != NULL)
		db->ops->job_unlock(db, db_job_key(name));
}

int db_can_notify(const struct db *db)
{
	return db && db->ops->listen != NULL;
}

/* Whether the backend has notices; err filled when not. */
static int notify_check(struct db *db, const char *channel, char *err,
                        size_t errlen)
{
	if (!db_can_notify(db))
		return seterr(err, errlen,
		              "database: notices need PostgreSQL (SQLite has "
		              "none: signal the milter)");
	for (const char *p = channel; p && *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		      *p == '_'))
			channel = NULL;
	if (channel == NULL || *channel == '\0')
		return seterr(err, errlen, "database: bad channel name");
	return 0;
}

int db_listen(struct db *db, const char *channel, char *err, size_t errlen)
{
	if (notify_check(db, channel, err, errlen) != 0)
		return -1;
	if (db->ops->listen(db, channel) != 0)
		return seterr(err, errlen, "database: LISTEN %s: %s", channel,
		              db_errmsg(db));
	return 0;
}

int db_notify(struct db *db, const char *channel, const char *payload,
              char *err, size_t errlen)
{
	if (notify_check(db, channel, err, errlen) != 0)
		return -1;
	if (db->ops->notify(db, channel, payload ? payload : "") != 0)
		return seterr(err, errlen, "database: NOTIFY %s: %s", channel,
		              db_errmsg(db));
	return 0;
}

int db_wait_notify(struct db *db, int timeout_ms, char *buf, size_t len,
                   char *err, size_t errlen)
{
	int rc;

	if (len > 0)
		buf[0] = '\0';
	if (notify_check(db, "x", err, errlen) != 0)
		return -1;
	rc = db->ops->wait_notify(db, timeout_ms, buf, len);
	if (rc < 0)
		seterr(err, errlen, "database: %s", db_errmsg(db));
	return rc;
}
