/* db_pg -- the PostgreSQL backend of the store (db_int.h, struct db_ops),
 * through libpq: the URI as libpq reads it (passwords from ~/.pgpass or
 * PGPASSFILE, never from the URI), '?' parameters turned into $n once per
 * statement, values as text (bytea in binary), and the schema version in
 * a table schema_version. */
#include "db_int.h"
#include "util.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define C(db) ((PGconn *)(db)->conn)

/* Type OIDs of the columns this program reads (pg_type.dat; the server
 * headers are not needed for a few numbers). */
#define OID_BOOL   16
#define OID_BYTEA  17
#define OID_INT8   20
#define OID_INT2   21
#define OID_INT4   23
#define OID_TEXT   25
#define OID_FLOAT4 700
#define OID_FLOAT8 701

/* A statement: the translated text, its parameters as text, its result. */
struct db_stmt {
	struct db *db;
	char *sql;
	char name[32]; /* kept statements are prepared under a name */
	int prepared;
	unsigned gen; /* on connection number gen (db->conn_gen) */
	int nparams;  /* of the text */
	int nargs;    /* bound: nparams, the missing ones NULL as in SQLite */
	char **vals;
	int *lens, *fmts;
	Oid *types;
	PGresult *res;
	int row, nrows, ran;
	unsigned char *blob; /* the last bytea read, unescaped */
};

/* The error of res (or of the connection) into db->msg, one line. */
static void pg_seterr(struct db *db, const PGresult *res)
{
	const char *m =
	        res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	const char *state =
	        res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	size_t n;

	if (state && strcmp(state, "55P03") == 0)
		m = "the database is locked by another process (waited 5 s; "
		    "another smimectl may be running): try again";
	if (m == NULL)
		m = PQerrorMessage(C(db));
	snprintf(db->msg, sizeof(db->msg), "%s", m && *m ? m : "unknown error");
	n = strlen(db->msg);
	while (n && (db->msg[n - 1] == '\n' || db->msg[n - 1] == ' '))
		db->msg[--n] = '\0';
	/* libpq's hints come on lines of their own: one line here */
	for (char *p = db->msg; *p; p++)
		if (*p == '\n' || *p == '\t')
			*p = ' ';
}

static const char *pg_errmsg(struct db *db)
{
	return db->msg;
}

/* Keep the server's NOTICEs ("already exists, skipping") off stderr. */
static void pg_notice(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

/* sql on the connection as it is: 0 or -1 (db->msg). */
static int pg_exec_once(struct db *db, const char *sql)
{
	PGresult *res = PQexec(C(db), sql);
	ExecStatusType st = PQresultStatus(res);
	int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : -1;

	if (rc != 0)
		pg_seterr(db, res);
	PQclear(res);
	return rc;
}

/* What every connection of ours sets: a lock held elsewhere fails after
 * 5 s, as SQLite's busy timeout; no NOTICEs; read-only when opened so. */
static int pg_session(struct db *db)
{
	return pg_exec_once(db, "SET lock_timeout = 5000;"
	                        " SET client_min_messages = warning") != 0 ||
	                       (db->readonly &&
	                        pg_exec_once(db, "SET default_transaction_read_"
	                                         "only = on") != 0)
	               ? -1
	               : 0;
}

/*
 * Connect again after the server or the network dropped the connection
 * (a restart, a failover): the same URI, the session settings again, and
 * the kept statements prepared anew (conn_gen).  0 or -1.
 */
static int pg_job_retake(struct db *db);

static int pg_revive(struct db *db)
{
	PQreset(C(db));
	db->conn_gen++;
	if (PQstatus(C(db)) != CONNECTION_OK) {
		pg_seterr(db, NULL);
		return -1;
	}
	return pg_session(db) != 0 || pg_job_retake(db) != 0 ? -1 : 0;
}

/*
 * Before a round trip: 1 when the connection is idle (so that the request
 * may be sent again on a new connection if this one turns out dead), 0 in
 * a transaction, -1 when it cannot be used: a transaction the connection
 * died in is over, and says so until the caller ends it.
 */
static int pg_before(struct db *db)
{
	if (db->lost_tx) {
		snprintf(db->msg, sizeof(db->msg),
		         "the connection to the database was lost: the "
		         "transaction is rolled back");
		return -1;
	}
	if (PQstatus(C(db)) == CONNECTION_BAD && pg_revive(db) != 0)
		return -1;
	return PQtransactionStatus(C(db)) == PQTRANS_IDLE;
}

/* After a round trip that failed: 1 to send it again (the idle connection
 * was dead and a new one is up), 0 when not (a dead connection inside a
 * transaction marks it lost), -1 when no new one could be made (its
 * reason in db->msg, which the caller keeps). */
static int pg_after(struct db *db, int idle)
{
	if (PQstatus(C(db)) != CONNECTION_BAD)
		return 0;
	if (!idle) {
		db->lost_tx = 1;
		return 0;
	}
	return pg_revive(db) == 0 ? 1 : -1;
}

static int pg_exec(struct db *db, const char *sql)
{
	int idle;

	if (db->lost_tx &&
	    (strcmp(sql, "ROLLBACK") == 0 || strcmp(sql, "COMMIT") == 0)) {
		/* the server rolled it back when the connection went */
		db->lost_tx = 0;
		if (sql[0] == 'R')
			return 0;
		snprintf(db->msg, sizeof(db->msg),
		         "the connection to the database was lost: the "
		         "transaction is rolled back");
		return -1;
	}
	if ((idle = pg_before(db)) < 0)
		return -1;
	if (pg_exec_once(db, sql) == 0)
		return 0;
	return pg_after(db, idle) > 0 ? pg_exec_once(db, sql) : -1;
}

/* A password in the URI (user:pass@ or password=) is refused: it would sit
 * in a configuration file that many may read. */
static int pg_check_uri(const char *uri, char *err, size_t errlen)
{
	char *msg = NULL;
	PQconninfoOption *opts = PQconninfoParse(uri, &msg);
	int rc = 0;

	if (opts == NULL) {
		rc = seterr(err, errlen, "database URI %s: %s", uri,
		            msg ? msg : "cannot be parsed");
		PQfreemem(msg);
		return rc;
	}
	for (PQconninfoOption *o = opts; o->keyword; o++)
		if (strcmp(o->keyword, "password") == 0 && o->val && *o->val)
			rc = seterr(err, errlen,
			            "database URI: a password in the URI is "
			            "refused: put it in ~/.pgpass or in the "
			            "file that PGPASSFILE names");
	PQconninfoFree(opts);
	return rc;
}

static int pg_open(struct db *db, const char *uri, enum db_open_mode mode,
                   char *err, size_t errlen)
{
	PGconn *c;

	if (pg_check_uri(uri, err, errlen) != 0)
		return -1;
	c = PQconnectdb(uri);
	db->conn = c;
	if (c == NULL)
		return seterr(err, errlen, "database %s: out of memory", uri);
	if (PQstatus(c) != CONNECTION_OK) {
		pg_seterr(db, NULL);
		seterr(err, errlen, "database %s: %s", uri, db->msg);
		PQfinish(c);
		return -1;
	}
	PQsetNoticeProcessor(c, pg_notice, NULL);
	db->readonly = mode == DB_READONLY;
	if (pg_session(db) != 0) {
		seterr(err, errlen, "database %s: %s", uri, db->msg);
		PQfinish(c);
		return -1;
	}
	return 0;
}

static void pg_close(struct db *db)
{
	PQfinish(C(db));
}

/* The first column of the first row of sql as an integer: 1 and *out,
 * 0 when no row or NULL, -1 on error. */
static int pg_get(struct db *db, const char *sql, long long *out)
{
	PGresult *res = PQexec(C(db), sql);
	int rc = -1;

	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		pg_seterr(db, res);
	else if (PQntuples(res) < 1 || PQgetisnull(res, 0, 0))
		rc = 0;
	else {
		*out = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		rc = 1;
	}
	PQclear(res);
	return rc;
}

static int pg_version(struct db *db)
{
	long long v = 0;
	/* the catalogue read as a table, under this statement's snapshot:
	 * to_regclass() would answer from a cache that a table made by
	 * another node while we waited for the migration lock has not
	 * reached yet */
	int rc = pg_get(db,
	                "SELECT count(*) FROM pg_catalog.pg_class c"
	                " JOIN pg_catalog.pg_namespace n"
	                " ON n.oid = c.relnamespace"
	                " WHERE c.relname = 'schema_version'"
	                " AND n.nspname = current_schema()",
	                &v);

	if (rc < 0)
		return -1;
	if (v == 0)
		return 0; /* no table: an empty database */
	rc = pg_get(db, "SELECT max(version) FROM schema_version", &v);
	return rc < 0 ? -1 : rc == 0 ? 0 : (int)v;
}

static int pg_set_version(struct db *db, int version)
{
	char sql[256];

	snprintf(sql, sizeof(sql),
	         "CREATE TABLE IF NOT EXISTS schema_version"
	         " (version INTEGER NOT NULL);"
	         " DELETE FROM schema_version;"
	         " INSERT INTO schema_version (version) VALUES (%d)",
	         version);
	return pg_exec(db, sql);
}

static int pg_in_tx(struct db *db)
{
	return db->lost_tx || PQtransactionStatus(C(db)) != PQTRANS_IDLE;
}

/* ---- statements -------------------------------------------------------- */

static void stmt_unbind(struct db_stmt *st)
{
	for (int i = 0; i < st->nargs; i++)
		free(st->vals[i]);
	free(st->vals);
	free(st->lens);
	free(st->fmts);
	free(st->types);
	st->vals = NULL;
	st->lens = st->fmts = NULL;
	st->types = NULL;
	st->nargs = 0;
}

static void stmt_clear(struct db_stmt *st)
{
	PQclear(st->res);
	st->res = NULL;
	PQfreemem(st->blob);
	st->blob = NULL;
	st->row = -1;
	st->nrows = st->ran = 0;
}

static int pg_prepare(struct db *db, const char *sql, int keep,
                      struct db_stmt **out)
{
	struct db_stmt *st = calloc(1, sizeof(*st));

	*out = st;
	if (st == NULL || (st->sql = db_pg_params(sql, &st->nparams)) == NULL) {
		snprintf(db->msg, sizeof(db->msg), "out of memory");
		return -1;
	}
	st->db = db;
	st->row = -1;
	if (keep)
		snprintf(st->name, sizeof(st->name), "smime_%lu",
		         ++db->stmt_seq);
	return 0;
}

/* One parameter as libpq takes it: text (integers in decimal), bytea in
 * binary, NULL as a null pointer; typed int8, text or bytea, NULL too, so
 * that "? IS NULL OR col = ?" needs no cast.  0 or -1. */
static int bind_one(struct db_stmt *st, int i, const struct db_val *v)
{
	char num[24];

	st->types[i] = v->of == DB_VAL_INT    ? OID_INT8
	               : v->of == DB_VAL_TEXT ? OID_TEXT
	               : v->of == DB_VAL_BLOB ? OID_BYTEA
	                                      : 0;
	switch (v->type) {
	case DB_VAL_INT:
		snprintf(num, sizeof(num), "%lld", v->i);
		st->vals[i] = strdup(num);
		break;
	case DB_VAL_TEXT:
		st->vals[i] = strdup(v->s);
		break;
	case DB_VAL_BLOB:
		st->vals[i] = malloc(v->i > 0 ? (size_t)v->i : 1);
		if (st->vals[i] && v->i > 0)
			memcpy(st->vals[i], v->s, (size_t)v->i);
		st->lens[i] = (int)v->i;
		st->fmts[i] = 1;
		break;
	default:
		return 0;
	}
	return st->vals[i] ? 0 : -1;
}

static int pg_bind(struct db_stmt *st, const struct db_val *args, int nargs)
{
	int n = st->nparams;

	stmt_clear(st);
	stmt_unbind(st);
	if (nargs > n) {
		snprintf(st->db->msg, sizeof(st->db->msg),
		         "%d parameters for a statement that has %d", nargs, n);
		return -1;
	}
	if (n == 0)
		return 0;
	st->vals = calloc((size_t)n, sizeof(*st->vals));
	st->lens = calloc((size_t)n, sizeof(*st->lens));
	st->fmts = calloc((size_t)n, sizeof(*st->fmts));
	st->types = calloc((size_t)n, sizeof(*st->types));
	st->nargs = n;
	if (st->vals == NULL || st->lens == NULL || st->fmts == NULL ||
	    st->types == NULL)
		goto oom;
	for (int i = 0; i < nargs; i++)
		if (bind_one(st, i, &args[i]) != 0)
			goto oom;
	return 0;
oom:
	snprintf(st->db->msg, sizeof(st->db->msg), "out of memory");
	return -1;
}

/* Send the statement once (a kept one is prepared on its first run on
 * this connection): the result, or NULL when the prepare failed. */
static PGresult *stmt_send(struct db_stmt *st)
{
	PGconn *c = C(st->db);
	const char *const *vals = (const char *const *)st->vals;

	if (st->name[0] && (!st->prepared || st->gen != st->db->conn_gen)) {
		PGresult *p =
		        PQprepare(c, st->name, st->sql, st->nargs, st->types);
		int ok = PQresultStatus(p) == PGRES_COMMAND_OK;
		if (!ok)
			pg_seterr(st->db, p);
		PQclear(p);
		if (!ok)
			return NULL;
		st->prepared = 1;
		st->gen = st->db->conn_gen;
	}
	return st->name[0] ? PQexecPrepared(c, st->name, st->nargs, vals,
	                                    st->lens, st->fmts, 0)
	                   : PQexecParams(c, st->sql, st->nargs, st->types,
	                                  vals, st->lens, st->fmts, 0);
}

static int stmt_ok(const PGresult *res)
{
	ExecStatusType s = PQresultStatus(res);

	return res && (s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK);
}

/* Run the statement (again on a new connection when an idle one was
 * dead); its rows in st->res. */
static int stmt_run(struct db_stmt *st)
{
	int idle = pg_before(st->db), again;

	st->ran = 1;
	if (idle < 0)
		return -1;
	st->res = stmt_send(st);
	again = stmt_ok(st->res) ? 0 : pg_after(st->db, idle);
	if (again > 0) {
		PQclear(st->res);
		st->res = stmt_send(st);
	}
	if (!stmt_ok(st->res)) {
		if (st->res && again >= 0)
			pg_seterr(st->db, st->res);
		return -1;
	}
	st->nrows = PQresultStatus(st->res) == PGRES_TUPLES_OK
	                    ? PQntuples(st->res)
	                    : 0;
	st->db->changes = strtoll(PQcmdTuples(st->res), NULL, 10);
	return 0;
}

static int pg_step(struct db_stmt *st)
{
	if (!st->ran && stmt_run(st) != 0)
		return -1;
	if (st->res == NULL || PQresultStatus(st->res) == PGRES_FATAL_ERROR)
		return -1;
	PQfreemem(st->blob);
	st->blob = NULL;
	if (st->row + 1 >= st->nrows) {
		st->row = st->nrows;
		return 0;
	}
	st->row++;
	return 1;
}

static void pg_reset(struct db_stmt *st)
{
	stmt_clear(st);
	stmt_unbind(st);
}

static void pg_finalize(struct db_stmt *st)
{
	if (st == NULL)
		return;
	/* a kept statement is finalized by db_close only: the server drops
	 * it with the connection, no DEALLOCATE needed */
	stmt_clear(st);
	stmt_unbind(st);
	free(st->sql);
	free(st);
}

static int pg_ncols(struct db_stmt *st)
{
	/* asked before the first step (as SQLite answers then): run it now;
	 * a failure is the step's to report */
	if (!st->ran)
		stmt_run(st);
	return st->res ? PQnfields(st->res) : 0;
}

/* Whether the current row has column col. */
static int has_value(const struct db_stmt *st, int col)
{
	return st->res && st->row >= 0 && st->row < st->nrows && col >= 0 &&
	       col < PQnfields(st->res);
}

static enum db_val_type pg_col_type(struct db_stmt *st, int col)
{
	if (!has_value(st, col) || PQgetisnull(st->res, st->row, col))
		return DB_VAL_NULL;
	switch (PQftype(st->res, col)) {
	case OID_INT8:
	case OID_INT4:
	case OID_INT2:
	case OID_BOOL:
		return DB_VAL_INT;
	case OID_FLOAT4:
	case OID_FLOAT8:
		return DB_VAL_REAL;
	case OID_BYTEA:
		return DB_VAL_BLOB;
	default:
		return DB_VAL_TEXT;
	}
}

static const char *pg_col_text(struct db_stmt *st, int col)
{
	const char *t;

	if (!has_value(st, col) || PQgetisnull(st->res, st->row, col))
		return NULL;
	t = PQgetvalue(st->res, st->row, col);
	/* a boolean reads as SQLite gives it: 1 or 0 */
	if (PQftype(st->res, col) == OID_BOOL)
		return *t == 't' ? "1" : "0";
	return t;
}

static long long pg_col_int(struct db_stmt *st, int col)
{
	const char *t = pg_col_text(st, col);

	return t ? strtoll(t, NULL, 10) : 0;
}

static double pg_col_real(struct db_stmt *st, int col)
{
	const char *t = pg_col_text(st, col);

	return t ? strtod(t, NULL) : 0;
}

static const void *pg_col_blob(struct db_stmt *st, int col, size_t *n)
{
	const char *t = pg_col_text(st, col);

	*n = 0;
	if (t == NULL)
		return NULL;
	if (PQftype(st->res, col) != OID_BYTEA) {
		*n = strlen(t);
		return t;
	}
	PQfreemem(st->blob);
	st->blob = PQunescapeBytea((const unsigned char *)t, n);
	return st->blob;
}

static long long pg_last_id(struct db *db)
{
	long long id = 0;

	return pg_get(db, "SELECT lastval()", &id) > 0 ? id : 0;
}

static int pg_changes(struct db *db)
{
	return (int)db->changes;
}

/* ---- run-once jobs and notices ---------------------------------------- */

/* sql returning one boolean: 1 true, 0 false, -1 (db->msg). */
static int pg_bool(struct db *db, const char *sql)
{
	PGresult *res;
	int rc = -1;

	if (pg_before(db) < 0)
		return -1;
	res = PQexec(C(db), sql);
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		rc = *PQgetvalue(res, 0, 0) == 't';
	else
		pg_seterr(db, res);
	PQclear(res);
	return rc;
}

/* A session lock: it outlives transactions and goes with the connection
 * (a connection made again after a drop no longer holds it). */
static int pg_job_lock(struct db *db, const char *name, long long key, int *got)
{
	char sql[64];
	int rc;

	(void)name;
	snprintf(sql, sizeof(sql), "SELECT pg_try_advisory_lock(%lld)", key);
	if ((rc = pg_bool(db, sql)) < 0)
		return -1;
	*got = rc;
	db->job_key = key;
	db->job_held = rc;
	return 0;
}

static void pg_job_unlock(struct db *db, long long key)
{
	char sql[64];

	if (!db->job_held || db->job_key != key)
		return;
	db->job_held = 0;
	snprintf(sql, sizeof(sql), "SELECT pg_advisory_unlock(%lld)", key);
	(void)pg_bool(db, sql);
}

/* After a reconnect: the session lock of a job went with the old
 * connection; take it again, or fail when another node has it now (the
 * job must not go on beside it).  0 or -1 (db->msg). */
static int pg_job_retake(struct db *db)
{
	char sql[64];

	if (!db->job_held)
		return 0;
	snprintf(sql, sizeof(sql), "SELECT pg_try_advisory_lock(%lld)",
	         db->job_key);
	if (pg_bool(db, sql) == 1)
		return 0;
	db->job_held = 0;
	snprintf(db->msg, sizeof(db->msg),
	         "the connection to the database was lost and the job's "
	         "lock with it: another node may be running the job");
	return -1;
}

static int pg_listen(struct db *db, const char *channel)
{
	char sql[96];

	/* channel is an identifier checked by db.c: lower case, digits, _ */
	snprintf(sql, sizeof(sql), "LISTEN %.64s", channel);
	return pg_exec(db, sql);
}

static int pg_notify(struct db *db, const char *channel, const char *payload)
{
	const char *vals[2] = { channel, payload };
	PGresult *res;
	int rc;

	if (pg_before(db) < 0)
		return -1;
	res = PQexecParams(C(db), "SELECT pg_notify($1, $2)", 2, NULL, vals,
	                   NULL, NULL, 0);
	rc = PQresultStatus(res) == PGRES_TUPLES_OK ? 0 : -1;
	if (rc != 0)
		pg_seterr(db, res);
	PQclear(res);
	return rc;
}

/* A notice already read off the socket into buf: 1, else 0. */
static int pg_take_notice(struct db *db, char *buf, size_t len)
{
	PGnotify *n = PQnotifies(C(db));

	if (n == NULL)
		return 0;
	if (len > 0)
		snprintf(buf, len, "%s", n->extra ? n->extra : "");
	PQfreemem(n);
	return 1;
}

/* The connection is gone: said once in db->msg, and it stays gone (a
 * LISTEN is not made again behind the caller's back: it must know that
 * notices may have been missed). */
static int pg_lost(struct db *db)
{
	char why[400];

	pg_seterr(db, NULL);
	snprintf(why, sizeof(why), "%s", db->msg);
	snprintf(db->msg, sizeof(db->msg),
	         "the connection to the database was lost: %s", why);
	return -1;
}

static int pg_wait_notify(struct db *db, int timeout_ms, char *buf, size_t len)
{
	struct pollfd p;
	int rc;

	if (pg_take_notice(db, buf, len))
		return 1;
	if (PQstatus(C(db)) != CONNECTION_OK || (p.fd = PQsocket(C(db))) < 0)
		return pg_lost(db);
	p.events = POLLIN;
	p.revents = 0;
	rc = poll(&p, 1, timeout_ms);
	if (rc < 0 && errno != EINTR) {
		snprintf(db->msg, sizeof(db->msg), "poll: %s", strerror(errno));
		return -1;
	}
	if (rc <= 0)
		return 0;
	/* readable: a notice, or the end of the connection */
	if (!PQconsumeInput(C(db)) || PQstatus(C(db)) != CONNECTION_OK)
		return pg_lost(db);
	return pg_take_notice(db, buf, len);
}

const struct db_ops db_pg_ops = {
	DB_OPS_FUNCTIONS(pg),
	.name = "postgresql",
	.ddl = db_pg_ddl,
	.begin_write = "BEGIN",
	.begin_read = "BEGIN ISOLATION LEVEL REPEATABLE READ",
	/* two nodes starting at once: one migrates, the other waits and
	 * finds it done (the key: "smime" in ASCII) */
	.migrate_lock = "SELECT pg_advisory_xact_lock(495756864869)",
	.lock_writers = "LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE",
	.job_lock = pg_job_lock,
	.job_unlock = pg_job_unlock,
	.listen = pg_listen,
	.notify = pg_notify,
	.wait_notify = pg_wait_notify,
	/* one node's writers wait for each other, never for another node's
	 * (the two-key form: a key space of its own; the class "smau") */
	.audit_node_lock = "SELECT pg_advisory_xact_lock(1936548213,"
	                   " hashtext(?))",
	.audit_next_id =
	        "SELECT nextval(pg_get_serial_sequence('audit', 'id'))",
};
