/* db_audit -- the audit log as a hash chain (see db.h). */
#include "db_int.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>

/* ---- the audit hash chain (schema 5) ---------------------------------
 * hash = SHA-256 over
 *   "smime-milter-audit-v1\n"
 *   field(prev_hash) field(id) field(at) field(queue_id) field(message_id)
 *   field(from_addr) field(action) field(cert_serial) field(digest)
 *   field(result)
 * where field(NULL) = 'N' and field(value) = tag || 8-byte big-endian
 * length || bytes, tag 'I' for an integer (decimal ASCII), 'T' for text,
 * 'B' for a blob, 'R' for a real ("%.17g").  Hashes are lower-case hex; the
 * first row's prev_hash is 64 zeros.
 * Schema 6 added recipients and cert_issuer.  A row where either is set is
 * hashed as v2: "smime-milter-audit-v2\n", the same fields, then
 * field(recipients) field(cert_issuer).  A row where both are NULL keeps
 * the v1 hash, so rows written before schema 6 still verify, and setting
 * or clearing either column changes the hash of the row.
 * Schema 9 added node (one chain per node, issue 16).  A row of a named
 * node is hashed as v3: "smime-milter-audit-v3\n", the v2 fields, then
 * field(node), so moving a row to another node's chain changes its hash.
 * A row of node "" (every row written before schema 9) keeps its v1 or v2
 * hash, and moving it to a named node makes it v3: changed as well. */

struct hval {
	enum db_val_type type; /* the value as stored, both backends alike:
	                          integers hash as decimal text */
	const void *p;
	size_t n;
	long long i;
	double d;
};

#define AUDIT_HASH_COLS1 9  /* v1: id .. result */
#define AUDIT_HASH_COLS2 11 /* v2: and recipients, cert_issuer */
#define AUDIT_HASH_COLS  12 /* v3: and node */
static const char audit_hash_tag[] = "smime-milter-audit-v1\n";
static const char audit_hash_tag2[] = "smime-milter-audit-v2\n";
static const char audit_hash_tag3[] = "smime-milter-audit-v3\n";

static void hash_field(EVP_MD_CTX *md, const struct hval *v)
{
	unsigned char hdr[9];
	char num[40];
	const void *p = v->p;
	size_t n = v->n;

	switch (v->type) {
	case DB_VAL_NULL:
		EVP_DigestUpdate(md, "N", 1);
		return;
	case DB_VAL_INT:
		hdr[0] = 'I';
		n = (size_t)snprintf(num, sizeof(num), "%lld", v->i);
		p = num;
		break;
	case DB_VAL_REAL:
		hdr[0] = 'R';
		n = (size_t)snprintf(num, sizeof(num), "%.17g", v->d);
		p = num;
		break;
	case DB_VAL_BLOB:
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

/* Which hash a row gets: v3 with a node (column 11) named, else v2 when
 * column 9 or 10 is set, else v1; ncols: 9 for a row read before schema
 * 6, else 12.  Returns the number of columns hashed and sets *tag. */
static int audit_hash_version(const struct hval *cols, int ncols,
                              const char **tag, size_t *taglen)
{
	if (ncols > AUDIT_HASH_COLS2 && cols[11].type != DB_VAL_NULL &&
	    cols[11].n > 0) {
		*tag = audit_hash_tag3;
		*taglen = sizeof(audit_hash_tag3) - 1;
		return AUDIT_HASH_COLS;
	}
	if (ncols > AUDIT_HASH_COLS1 &&
	    (cols[9].type != DB_VAL_NULL || cols[10].type != DB_VAL_NULL)) {
		*tag = audit_hash_tag2;
		*taglen = sizeof(audit_hash_tag2) - 1;
		return AUDIT_HASH_COLS2;
	}
	*tag = audit_hash_tag;
	*taglen = sizeof(audit_hash_tag) - 1;
	return AUDIT_HASH_COLS1;
}

/* hex (65 bytes) = the hash of prev and the row's columns (see
 * audit_hash_version). */
static int audit_hash(const struct hval *prev, const struct hval *cols,
                      int ncols, char *hex)
{
	const char *tag;
	size_t taglen;
	int n = audit_hash_version(cols, ncols, &tag, &taglen);
	static const char digits[] = "0123456789abcdef";
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int dl = 0;
	EVP_MD_CTX *md = EVP_MD_CTX_new();

	if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(md);
		return -1;
	}
	EVP_DigestUpdate(md, tag, taglen);
	hash_field(md, prev);
	for (int i = 0; i < n; i++)
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
	struct hval v = { DB_VAL_NULL, NULL, 0, 0, 0 };

	if (s) {
		v.type = DB_VAL_TEXT;
		v.p = s;
		v.n = strlen(s);
	}
	return v;
}

static struct hval hv_int(long long i)
{
	struct hval v = { DB_VAL_INT, NULL, 0, i, 0 };
	return v;
}

/* Column i of q's row as a hash value (valid until q moves on). */
static struct hval hv_col(const struct db_q *q, int i)
{
	struct hval v = { db_q_type(q, i), NULL, 0, 0, 0 };

	switch (v.type) {
	case DB_VAL_INT:
		v.i = db_q_int(q, i);
		break;
	case DB_VAL_REAL:
		v.d = db_q_real(q, i);
		break;
	case DB_VAL_BLOB:
	case DB_VAL_TEXT:
		v.p = db_q_blob(q, i, &v.n);
		break;
	default:
		break;
	}
	return v;
}

#define AUDIT_COLS1                                                      \
	"id, at, queue_id, message_id, from_addr, action, cert_serial, " \
	"digest, result"
#define AUDIT_COLS2 AUDIT_COLS1 ", recipients, cert_issuer"
#define AUDIT_COLS  AUDIT_COLS2 ", node"

/* The audit row r of node as hash values, with its id. */
static void audit_values(const struct audit_row *r, long long id,
                         const char *node, struct hval *cols)
{
	cols[0] = hv_int(id);
	cols[1] = hv_int((long long)(r->at ? r->at : time(NULL)));
	cols[2] = hv_text(r->queue_id);
	cols[3] = hv_text(r->message_id);
	cols[4] = hv_text(r->from_addr);
	cols[5] = hv_text(r->action);
	cols[6] = hv_text(r->cert_serial);
	cols[7] = hv_text(r->digest);
	cols[8] = hv_text(r->result);
	cols[9] = hv_text(r->recipients);
	cols[10] = hv_text(r->cert_issuer);
	cols[11] = hv_text(node);
}

/* db_audit_add inside its write transaction. */
static int audit_append(struct db *db, void *arg, char *err, size_t errlen)
{
	const struct audit_row *r = arg;
	struct hval cols[AUDIT_HASH_COLS], prev;
	char prevhex[65], hash[65];
	const char *node = db->node;
	long long id = 0;
	struct db_q q;

	if (db->chain_known && db->ops->in_tx(db)) {
		/* a later row of this transaction: the lock is held and the
		 * head is the row written just before */
		memcpy(prevhex, db->chain_hash, sizeof(prevhex));
	} else {
		/* this node's writers wait for each other, not for other
		 * nodes: PostgreSQL's advisory lock on the node name (held
		 * until the commit), SQLite's BEGIN IMMEDIATE (one host) */
		if (db->ops->audit_node_lock &&
		    (db_q_reuse(&q, db, &db->audit_lock,
		                db->ops->audit_node_lock,
		                DB_ARGS(DB_TEXT(node)), err, errlen) != 0 ||
		     (db_q_next(&q), db_q_close(&q)) != 0))
			return -1;
		if (db_q_reuse(&q, db, &db->audit_last,
		               "SELECT hash FROM audit WHERE node = ?"
		               " ORDER BY id DESC LIMIT 1",
		               DB_ARGS(DB_TEXT(node)), err, errlen) != 0)
			return -1;
		snprintf(prevhex, sizeof(prevhex), "%s", audit_zero_hash);
		/* a row without a hash (written around this program) stays
		 * a broken link that verify reports; chain on from zeros */
		if (db_q_next(&q) > 0 && db_q_text(&q, 0))
			snprintf(prevhex, sizeof(prevhex), "%s",
			         db_q_text(&q, 0));
		if (db_q_close(&q) != 0)
			return -1;
	}
	/* ids are shared by the nodes (a sequence on PostgreSQL); within a
	 * node they grow, since the lock is held until the commit */
	if (db_q_reuse(&q, db, &db->audit_id, db->ops->audit_next_id, DB_NOARGS,
	               err, errlen) != 0)
		return -1;
	if (db_q_next(&q) > 0)
		id = db_q_int(&q, 0);
	if (db_q_close(&q) != 0)
		return -1;
	if (id <= 0)
		return seterr(err, errlen, "audit: no id for the next row");
	audit_values(r, id, node, cols);
	prev = hv_text(prevhex);
	if (audit_hash(&prev, cols, AUDIT_HASH_COLS, hash) != 0)
		return seterr(err, errlen, "audit: SHA-256 failed");
	if (db_q_reuse(&q, db, &db->audit_ins,
	               "INSERT INTO audit (" AUDIT_COLS ", prev_hash, hash)"
	               " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
	               DB_ARGS(DB_INT(id), DB_INT(cols[1].i),
	                       DB_TEXT(r->queue_id), DB_TEXT(r->message_id),
	                       DB_TEXT(r->from_addr), DB_TEXT(r->action),
	                       DB_TEXT(r->cert_serial), DB_TEXT(r->digest),
	                       DB_TEXT(r->result), DB_TEXT(r->recipients),
	                       DB_TEXT(r->cert_issuer), DB_TEXT(node),
	                       DB_TEXT(prevhex), DB_TEXT(hash)),
	               err, errlen) != 0)
		return -1;
	db_q_next(&q);
	if (db_q_close(&q) != 0)
		return -1;
	/* the next row of this transaction chains on from this one */
	memcpy(db->chain_hash, hash, sizeof(db->chain_hash));
	db->chain_known = 1;
	return 0;
}

int db_audit_add(struct db *db, const struct audit_row *r, char *err,
                 size_t errlen)
{
	/* Text from the network (a From or an envelope address, a
	 * signer's issuer) may be any octets.  PostgreSQL refuses what is
	 * not UTF-8, and a row it refuses would stop every row behind it, so
	 * both backends store and hash such octets as \xHH. */
	struct audit_row r2 = *r;
	const char **f[] = { &r2.queue_id,    &r2.message_id, &r2.from_addr,
	                     &r2.action,      &r2.cert_serial, &r2.digest,
	                     &r2.result,      &r2.recipients,  &r2.cert_issuer };
	int made[sizeof(f) / sizeof(f[0])], rc = 0;

	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		const char *was = *f[i];
		if ((*f[i] = utf8_escape(was, &made[i])) == NULL && was)
			rc = seterr(err, errlen, "out of memory");
	}
	/* the chain is read and extended in one write transaction, so two
	 * writers of one node (two milter queues, smimectl) cannot fork it */
	if (rc == 0)
		rc = db_atomic(db, audit_append, &r2, err, errlen);
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if (made[i])
			free((char *)*f[i]);
	return rc;
}

/* Migration 4 -> 5: chain the rows already there, in id order. */
int db_audit_chain_existing(struct db *db, char *err, size_t errlen)
{
	char prevhex[65], hash[65];
	struct db_q sel;
	int rc = 0;

	if (db_q_open(&sel, db, "SELECT " AUDIT_COLS1 " FROM audit ORDER BY id",
	              DB_NOARGS, err, errlen) != 0)
		return -1;
	snprintf(prevhex, sizeof(prevhex), "%s", audit_zero_hash);
	while (rc == 0 && db_q_next(&sel) > 0) {
		struct hval cols[AUDIT_HASH_COLS], prev = hv_text(prevhex);
		for (int i = 0; i < AUDIT_HASH_COLS1; i++)
			cols[i] = hv_col(&sel, i);
		if (audit_hash(&prev, cols, AUDIT_HASH_COLS1, hash) != 0)
			rc = seterr(err, errlen, "audit: SHA-256 failed");
		else
			rc = db_run(db,
			            "UPDATE audit SET prev_hash = ?, hash = ?"
			            " WHERE id = ?",
			            DB_ARGS(DB_TEXT(prevhex), DB_TEXT(hash),
			                    DB_INT(db_q_int(&sel, 0))),
			            err, errlen);
		memcpy(prevhex, hash, sizeof(hash));
	}
	if (db_q_close(&sel) != 0)
		rc = -1;
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

/* Columns of the verify query: AUDIT_COLS, then prev_hash and hash. */
#define AUDIT_PREV AUDIT_HASH_COLS

/* Check the current row of st against expect (the previous hash): 0 when
 * it verifies, else the problem.  -1 when SHA-256 fails. */
static int audit_check_row(const struct db_q *q, const char *expect,
                           long long anchor_id, const char *anchor_hash)
{
	struct hval cols[AUDIT_HASH_COLS], prev = hv_col(q, AUDIT_PREV);
	const unsigned char *ph =
	        (const unsigned char *)db_q_text(q, AUDIT_PREV);
	const unsigned char *h =
	        (const unsigned char *)db_q_text(q, AUDIT_PREV + 1);
	int phn = ph ? (int)strlen((const char *)ph) : 0,
	    hn = h ? (int)strlen((const char *)h) : 0;
	char hash[65];

	for (int i = 0; i < AUDIT_HASH_COLS; i++)
		cols[i] = hv_col(q, i);
	if (!is_hash(h, hn))
		return DB_AUDIT_HASH_MISSING;
	if (!is_hash(ph, phn))
		return DB_AUDIT_PREV_MISSING;
	if (audit_hash(&prev, cols, AUDIT_HASH_COLS, hash) != 0)
		return -1;
	if (memcmp(hash, h, 64) != 0)
		return DB_AUDIT_CHANGED;
	if (memcmp(ph, expect, 64) != 0)
		return DB_AUDIT_LINK;
	if (anchor_id > 0 && db_q_int(q, 0) == anchor_id &&
	    (anchor_hash == NULL || strlen(anchor_hash) != 64 ||
	     strncasecmp(anchor_hash, (const char *)h, 64) != 0))
		return DB_AUDIT_ANCHOR_CHANGED;
	return DB_AUDIT_OK;
}

/* db_audit_verify_node inside the caller's read transaction. */
static int audit_walk(struct db *db, const char *node, long long anchor_id,
                      const char *anchor_hash, struct db_audit_check *out,
                      char *err, size_t errlen)
{
	char expect[65];
	long long previd = 0;
	struct db_q q;
	int rc = 0, s;

	memset(out, 0, sizeof(*out));
	snprintf(out->node, sizeof(out->node), "%s", node);
	snprintf(expect, sizeof(expect), "%s", audit_zero_hash);
	snprintf(out->last_hash, sizeof(out->last_hash), "%s", audit_zero_hash);
	if (db_q_open(&q, db,
	              "SELECT " AUDIT_COLS ", prev_hash, hash FROM audit"
	              " WHERE node = ? ORDER BY id",
	              DB_ARGS(DB_TEXT(node)), err, errlen) != 0)
		return -1;
	while ((s = db_q_next(&q)) > 0) {
		long long id = db_q_int(&q, 0);
		int problem =
		        audit_check_row(&q, expect, anchor_id, anchor_hash);

		out->bad_id = id;
		out->prev_id = previd;
		if (problem < 0) {
			rc = seterr(err, errlen, "audit: SHA-256 failed");
			break;
		}
		if (problem != DB_AUDIT_OK) {
			out->problem = (enum db_audit_problem)problem;
			rc = 1;
			break;
		}
		memcpy(expect, db_q_text(&q, AUDIT_PREV + 1), 64);
		memcpy(out->last_hash, expect, 64);
		out->last_id = id;
		out->rows++;
		previd = id;
	}
	if (db_q_close(&q) != 0 && rc == 0)
		rc = -1;
	if (rc == 0)
		out->bad_id = out->prev_id = 0;
	if (rc == 0 && anchor_id > 0 && out->last_id < anchor_id) {
		/* walked to the end without meeting it */
		out->bad_id = anchor_id;
		out->prev_id = out->last_id;
		out->problem = DB_AUDIT_ANCHOR_MISSING;
		rc = 1;
	}
	return rc;
}

/* Room in *v (cap elements of size) for element n: 0, or -1 when out of
 * memory (*v left as it was). */
static int room(void **v, size_t *cap, size_t n, size_t size)
{
	void *p;

	if (n < *cap)
		return 0;
	if ((p = realloc(*v, (*cap ? 2 * *cap : 8) * size)) == NULL)
		return -1;
	*v = p;
	*cap = *cap ? 2 * *cap : 8;
	return 0;
}

/* Every node's chain in the caller's read transaction (db_audit_verify):
 * the anchor in the chain of its row's node, or of the only node. */
static int audit_walk_all(struct db *db, long long anchor_id,
                          const char *anchor_hash, struct db_audit_check *out,
                          char *err, size_t errlen)
{
	struct db_audit_check one, sum;
	char anode[DB_NODE_MAX + 1] = "";
	char **nodes = NULL;
	size_t n = 0;
	int rc = 0, found = 0;

	memset(&sum, 0, sizeof(sum));
	snprintf(sum.last_hash, sizeof(sum.last_hash), "%s", audit_zero_hash);
	if (db_audit_nodes(db, &nodes, &n, err, errlen) != 0)
		return -1;
	if (anchor_id > 0 &&
	    (found = db_audit_node_of(db, anchor_id, anode, sizeof(anode), err,
	                              errlen)) < 0)
		rc = -1;
	if (anchor_id > 0 && found == 0 && n == 1)
		snprintf(anode, sizeof(anode), "%s", nodes[0]);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		int mine = anchor_id > 0 && strcmp(nodes[i], anode) == 0;
		rc = audit_walk(db, nodes[i], mine ? anchor_id : 0,
		                mine ? anchor_hash : NULL, &one, err, errlen);
		if (rc != 0)
			break;
		sum.rows += one.rows;
		if (one.last_id > sum.last_id) {
			sum.last_id = one.last_id;
			memcpy(sum.last_hash, one.last_hash, 65);
			memcpy(sum.node, one.node, sizeof(sum.node));
		}
	}
	if (rc == 0 && anchor_id > 0 && n == 0) {
		/* no rows at all: the anchor row is gone with them */
		sum.bad_id = anchor_id;
		sum.problem = DB_AUDIT_ANCHOR_MISSING;
		rc = 1;
	}
	*out = rc == 0 || (rc == 1 && n == 0) ? sum : one;
	db_audit_nodes_free(nodes, n);
	return rc;
}

int db_audit_verify(struct db *db, long long anchor_id, const char *anchor_hash,
                    struct db_audit_check *out, char *err, size_t errlen)
{
	int rc;

	/* one read transaction: a consistent snapshot while the milter
	 * appends */
	if (db_begin_read(db, err, errlen) != 0)
		return -1;
	rc = audit_walk_all(db, anchor_id, anchor_hash, out, err, errlen);
	db_rollback(db);
	return rc;
}

int db_audit_verify_node(struct db *db, const char *node, long long anchor_id,
                         const char *anchor_hash, struct db_audit_check *out,
                         char *err, size_t errlen)
{
	int rc;

	if (db_begin_read(db, err, errlen) != 0)
		return -1;
	rc = audit_walk(db, node ? node : "", anchor_id, anchor_hash, out, err,
	                errlen);
	db_rollback(db);
	return rc;
}

int db_audit_nodes(struct db *db, char ***names, size_t *n, char *err,
                   size_t errlen)
{
	char **v = NULL;
	size_t cap = 0;
	struct db_q q;
	int rc = 0;

	*names = NULL;
	*n = 0;
	if (db_q_open(&q, db,
	              "SELECT node FROM audit UNION"
	              " SELECT node FROM audit_anchors ORDER BY 1",
	              DB_NOARGS, err, errlen) != 0)
		return -1;
	while (rc == 0 && db_q_next(&q) > 0) {
		const char *t = db_q_text(&q, 0);
		if (room((void **)&v, &cap, *n, sizeof(*v)) != 0 ||
		    (v[*n] = strdup(t ? t : "")) == NULL)
			rc = seterr(err, errlen, "out of memory");
		else
			(*n)++;
	}
	if (db_q_close(&q) != 0)
		rc = -1;
	if (rc != 0) {
		db_audit_nodes_free(v, *n);
		v = NULL;
		*n = 0;
	}
	*names = v;
	return rc;
}

void db_audit_nodes_free(char **names, size_t n)
{
	strv_free(names, n);
}

int db_audit_node_of(struct db *db, long long id, char *node, size_t len,
                     char *err, size_t errlen)
{
	struct db_q q;
	int rc;

	if (len)
		node[0] = '\0';
	if (db_q_open(&q, db, "SELECT node FROM audit WHERE id = ?",
	              DB_ARGS(DB_INT(id)), err, errlen) != 0)
		return -1;
	rc = db_q_next(&q);
	if (rc > 0 && len)
		snprintf(node, len, "%s",
		         db_q_text(&q, 0) ? db_q_text(&q, 0) : "");
	if (db_q_close(&q) != 0)
		return -1;
	return rc;
}

int db_audit_id_sync(struct db *db, char *err, size_t errlen)
{
	if (!db_is_pg(db))
		return 0;
	return db_get_int(db,
	                  "SELECT setval(pg_get_serial_sequence('audit', 'id'),"
	                  " COALESCE(MAX(id), 0) + 1, false) FROM audit",
	                  DB_NOARGS, NULL, err, errlen) < 0
	               ? -1
	               : 0;
}

/* ---- RFC 3161 anchors (schema 7) ------------------------------------ */

long long db_audit_anchor_add(struct db *db, long long audit_id,
                              const char *hash, const unsigned char *token,
                              size_t len, time_t gen_time, const char *tsa_url,
                              char *err, size_t errlen)
{
	/* the anchor stamps the chain of its row's node (schema 9) */
	if (db_run(db,
	           "INSERT INTO audit_anchors (audit_id, hash, token,"
	           " gen_time, tsa_url, created_at, node) VALUES (?,?,?,?,?,?,"
	           " COALESCE((SELECT node FROM audit WHERE id = ?1), ''))",
	           DB_ARGS(DB_INT(audit_id), DB_TEXT(hash),
	                   DB_BLOB(token ? (const void *)token : "", len),
	                   DB_INT((long long)gen_time), DB_TEXT(tsa_url),
	                   DB_INT((long long)time(NULL))),
	           err, errlen) != 0)
		return -1;
	return db_last_id(db);
}

void db_audit_anchors_free(struct db_audit_anchor *a, size_t n)
{
	if (a == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free(a[i].token);
		free(a[i].tsa_url);
		free(a[i].node);
	}
	free(a);
}

/* The current row of q (the anchor query) into a; 0 or -1. */
static int anchor_fill(struct db_q *q, struct db_audit_anchor *a)
{
	size_t tn = 0;
	const void *tok = db_q_blob(q, 3, &tn);
	const char *h = db_q_text(q, 2), *rh = db_q_text(q, 8);

	memset(a, 0, sizeof(*a));
	a->id = db_q_int(q, 0);
	a->audit_id = db_q_int(q, 1);
	if (h && strlen(h) < sizeof(a->hash))
		snprintf(a->hash, sizeof(a->hash), "%s", h);
	a->token = malloc(tn > 0 ? tn : 1);
	a->tsa_url = db_q_dup(q, 5);
	a->node = db_q_dup(q, 9);
	if (a->token == NULL || a->node == NULL)
		return -1;
	if (tn > 0)
		memcpy(a->token, tok, tn);
	a->token_len = tn;
	a->gen_time = (time_t)db_q_int(q, 4);
	a->created_at = (time_t)db_q_int(q, 6);
	a->row_found = (int)db_q_int(q, 7);
	if (rh && is_hash((const unsigned char *)rh, (int)strlen(rh)))
		memcpy(a->row_hash, rh, 65);
	return 0;
}

/* Every anchor (of node, unless NULL), with its row's hash now, into
 * *anchors and *n. */
static int anchor_list(struct db *db, const char *node,
                       struct db_audit_anchor **anchors, size_t *n, char *err,
                       size_t errlen)
{
	struct db_audit_anchor *a = NULL;
	size_t cap = 0;
	struct db_q q;
	int rc = 0;

	*anchors = NULL;
	*n = 0;
	if (db_q_open(&q, db,
	              "SELECT x.id, x.audit_id, x.hash, x.token, x.gen_time,"
	              " x.tsa_url, x.created_at, a.id IS NOT NULL, a.hash,"
	              " x.node FROM audit_anchors x LEFT JOIN audit a"
	              " ON a.id = x.audit_id AND a.node = x.node"
	              " WHERE ?1 IS NULL OR x.node = ?1 ORDER BY x.id",
	              DB_ARGS(DB_TEXT(node)), err, errlen) != 0)
		return -1;
	while (rc == 0 && db_q_next(&q) > 0) {
		if (room((void **)&a, &cap, *n, sizeof(*a)) != 0) {
			rc = seterr(err, errlen, "out of memory");
			break;
		}
		if (anchor_fill(&q, &a[*n]) != 0)
			rc = seterr(err, errlen, "out of memory");
		(*n)++;
	}
	if (db_q_close(&q) != 0)
		rc = -1;
	if (rc != 0) {
		db_audit_anchors_free(a, *n);
		a = NULL;
		*n = 0;
	}
	*anchors = a;
	return rc;
}

/* The chain of node (NULL: every chain) and its anchors, in one read
 * transaction. */
static int verify_with_anchors(struct db *db, const char *node,
                               long long anchor_id, const char *anchor_hash,
                               struct db_audit_check *out,
                               struct db_audit_anchor **anchors, size_t *n,
                               char *err, size_t errlen)
{
	int rc;

	*anchors = NULL;
	*n = 0;
	if (db_begin_read(db, err, errlen) != 0)
		return -1;
	rc = node ? audit_walk(db, node, anchor_id, anchor_hash, out, err,
	                       errlen)
	          : audit_walk_all(db, anchor_id, anchor_hash, out, err,
	                           errlen);
	if (rc >= 0 && anchor_list(db, node, anchors, n, err, errlen) != 0)
		rc = -1;
	db_rollback(db);
	return rc;
}

int db_audit_verify_anchors(struct db *db, long long anchor_id,
                            const char *anchor_hash, struct db_audit_check *out,
                            struct db_audit_anchor **anchors, size_t *n,
                            char *err, size_t errlen)
{
	return verify_with_anchors(db, NULL, anchor_id, anchor_hash, out,
	                           anchors, n, err, errlen);
}

int db_audit_verify_node_anchors(struct db *db, const char *node,
                                 long long anchor_id, const char *anchor_hash,
                                 struct db_audit_check *out,
                                 struct db_audit_anchor **anchors, size_t *n,
                                 char *err, size_t errlen)
{
	return verify_with_anchors(db, node ? node : "", anchor_id, anchor_hash,
	                           out, anchors, n, err, errlen);
}

int db_audit_find(struct db *db, const char *message_id, db_audit_row_fn fn,
                  void *arg, char *err, size_t errlen)
{
	struct db_q q;
	int stop = 0;

	if (db_q_open(&q, db,
	              "SELECT " AUDIT_COLS2 ", hash FROM audit"
	              " WHERE message_id = ? ORDER BY id",
	              DB_ARGS(DB_TEXT(message_id)), err, errlen) != 0)
		return -1;
	while (!stop && db_q_next(&q) > 0) {
		struct audit_row r = {
			.at = (time_t)db_q_int(&q, 1),
			.queue_id = db_q_text(&q, 2),
			.message_id = db_q_text(&q, 3),
			.from_addr = db_q_text(&q, 4),
			.action = db_q_text(&q, 5),
			.cert_serial = db_q_text(&q, 6),
			.digest = db_q_text(&q, 7),
			.result = db_q_text(&q, 8),
			.recipients = db_q_text(&q, 9),
			.cert_issuer = db_q_text(&q, 10),
		};
		stop = fn(arg, db_q_int(&q, 0), &r, db_q_text(&q, 11));
	}
	return db_q_close(&q);
}
