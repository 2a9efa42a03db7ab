/* db_stats -- the queries behind "smimectl stats" (see db.h): counts of the
 * audit log, the certificates in use, the CRLs and the chain's anchors,
 * all read in one read transaction so the figures fit together while the
 * milter appends. */
#include "db_int.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

/* The actions the milter writes (milter/callbacks.c, lib/message.c,
 * lib/inbound.c), always listed so that a counter exists before its
 * first message. */
static const char *const known_actions[] = {
	"signed",     "encrypted", "unsigned",      "passed",   "rejected",
	"tempfailed", "decrypted", "not-decrypted", "verified", "verify-failed",
};
#define NKNOWN (sizeof(known_actions) / sizeof(known_actions[0]))

/* Grow the array *v of *n elements of size sz by one zeroed element;
 * returns it, or NULL when out of memory. */
static void *grow(void *v, size_t *n, size_t sz)
{
	void **p = v;
	char *a = realloc(*p, (*n + 1) * sz);

	if (a == NULL)
		return NULL;
	*p = a;
	memset(a + *n * sz, 0, sz);
	return a + (*n)++ * sz;
}

/* Add total and recent to the count of key in *v (a new one when key is
 * not there yet, keylen bytes of key).  0 or -1 (out of memory). */
static int count_add(struct db_stats_count **v, size_t *n, const char *key,
                     size_t keylen, long long total, long long recent)
{
	struct db_stats_count *c = NULL;

	for (size_t i = 0; i < *n && c == NULL; i++)
		if (strlen((*v)[i].key) == keylen &&
		    memcmp((*v)[i].key, key, keylen) == 0)
			c = &(*v)[i];
	if (c == NULL) {
		if ((c = grow(v, n, sizeof(**v))) == NULL)
			return -1;
		if ((c->key = strndup(key, keylen)) == NULL) {
			(*n)--;
			return -1;
		}
	}
	c->total += total;
	c->recent += recent;
	return 0;
}

/* Rows of sql (key, total, recent; ?1 = since) added to *v; with
 * reason_only the key is cut at its first ": ".  0 or -1. */
static int counts_read(struct db *db, const char *sql, time_t since,
                       int reason_only, struct db_stats_count **v, size_t *n,
                       char *err, size_t errlen)
{
	struct db_q q;
	int rc = 0;

	if (db_q_open(&q, db, sql, DB_ARGS(DB_INT(since)), err, errlen) != 0)
		return -1;
	while (rc == 0 && db_q_next(&q) > 0) {
		const char *key = db_q_text(&q, 0), *colon;
		size_t len;

		if (key == NULL)
			key = "-";
		colon = reason_only ? strstr(key, ": ") : NULL;
		len = colon ? (size_t)(colon - key) : strlen(key);
		if (count_add(v, n, key, len, db_q_int(&q, 1), db_q_int(&q, 2)))
			rc = seterr(err, errlen, "out of memory");
	}
	if (db_q_close(&q) != 0)
		rc = -1;
	return rc;
}

struct certs_ctx {
	struct db_stats *s;
	int oom;
};

/* db_mappings callback: the active certificates into the db_stats. */
static int cert_row(void *arg, const char *address, const struct db_cert *c)
{
	struct certs_ctx *x = arg;
	struct db_stats_cert *e;

	if (!str_ieq(c->status, "active"))
		return 0;
	if ((e = grow(&x->s->certs, &x->s->ncerts, sizeof(*e))) == NULL)
		return x->oom = 1;
	e->mailbox = strdup(address ? address : c->mailbox);
	e->kind = strdup(c->kind ? c->kind : "-");
	e->serial = strdup(c->serial ? c->serial : "-");
	e->not_after = c->not_after;
	return x->oom = !(e->mailbox && e->kind && e->serial);
}

/* The newest CRL of each issuer. */
static const char crls_sql[] =
        "SELECT issuer, this_update, next_update FROM crls c"
        " WHERE id = (SELECT id FROM crls WHERE issuer = c.issuer"
        "  ORDER BY this_update DESC, id DESC LIMIT 1)"
        " ORDER BY issuer";

static int crls_read(struct db *db, struct db_stats *s, char *err,
                     size_t errlen)
{
	struct db_stats_crl *e;
	struct db_q q;
	int rc = 0;

	if (db_q_open(&q, db, crls_sql, DB_NOARGS, err, errlen) != 0)
		return -1;
	while (rc == 0 && db_q_next(&q) > 0) {
		if ((e = grow(&s->crls, &s->ncrls, sizeof(*e))) == NULL ||
		    (e->issuer = db_q_dup(&q, 0)) == NULL) {
			if (e)
				s->ncrls--;
			rc = seterr(err, errlen, "out of memory");
			break;
		}
		e->this_update = (time_t)db_q_int(&q, 1);
		e->next_update = (time_t)db_q_int(&q, 2);
	}
	if (db_q_close(&q) != 0)
		rc = -1;
	return rc;
}

/* Each node's chain: its length, head, and rows after its newest
 * anchor. */
static int nodes_read(struct db *db, struct db_stats *s, char *err,
                      size_t errlen)
{
	struct db_q q;
	size_t cap = 0;
	int rc = 0;

	if (db_q_open(&q, db,
	              "SELECT a.node, count(*), max(a.id),"
	              " count(CASE WHEN a.id > coalesce(m.last, 0) THEN 1 END)"
	              " FROM audit a LEFT JOIN (SELECT node, max(audit_id)"
	              " AS last FROM audit_anchors GROUP BY node) m"
	              " ON m.node = a.node GROUP BY a.node ORDER BY a.node",
	              DB_NOARGS, err, errlen) != 0)
		return -1;
	while (rc == 0 && db_q_next(&q) > 0) {
		struct db_stats_node *e;
		if (s->nnodes == cap) {
			void *p = realloc(s->nodes, (cap = cap ? 2 * cap : 4) *
			                                    sizeof(*s->nodes));
			if (p == NULL) {
				rc = seterr(err, errlen, "out of memory");
				break;
			}
			s->nodes = p;
		}
		e = &s->nodes[s->nnodes];
		e->node = db_q_dup(&q, 0);
		if (e->node == NULL) {
			rc = seterr(err, errlen, "out of memory");
			break;
		}
		e->rows = db_q_int(&q, 1);
		e->last_id = db_q_int(&q, 2);
		e->unanchored = db_q_int(&q, 3);
		s->audit_unanchored += e->unanchored;
		s->nnodes++;
	}
	if (db_q_close(&q) != 0)
		rc = -1;
	return rc;
}

/* The length and head of the chains, and the newest anchor. */
static int chain_read(struct db *db, struct db_stats *s, char *err,
                      size_t errlen)
{
	struct db_q q;

	if (nodes_read(db, s, err, errlen) != 0)
		return -1;

	if (db_get_int(db, "SELECT count(*) FROM audit", DB_NOARGS,
	               &s->audit_rows, err, errlen) < 0 ||
	    db_get_int(db, "SELECT coalesce(max(id), 0) FROM audit", DB_NOARGS,
	               &s->audit_last_id, err, errlen) < 0 ||
	    db_q_open(&q, db,
	              "SELECT id, audit_id, gen_time FROM audit_anchors"
	              " ORDER BY id DESC LIMIT 1",
	              DB_NOARGS, err, errlen) != 0)
		return -1;
	if (db_q_next(&q) > 0) {
		s->anchor_id = db_q_int(&q, 0);
		s->anchor_audit_id = db_q_int(&q, 1);
		s->anchor_gen_time = (time_t)db_q_int(&q, 2);
	}
	return db_q_close(&q);
}

/* Everything, inside the caller's read transaction. */
static int stats_read(struct db *db, time_t since, struct db_stats *s,
                      char *err, size_t errlen)
{
	struct certs_ctx cx = { s, 0 };

	for (size_t i = 0; i < NKNOWN; i++)
		if (count_add(&s->actions, &s->nactions, known_actions[i],
		              strlen(known_actions[i]), 0, 0) != 0)
			return seterr(err, errlen, "out of memory");
	if (counts_read(db,
	                "SELECT action, count(*),"
	                " count(CASE WHEN at >= ?1 THEN 1 END)"
	                " FROM audit GROUP BY action ORDER BY action",
	                since, 0, &s->actions, &s->nactions, err,
	                errlen) != 0 ||
	    counts_read(db,
	                "SELECT result, count(*),"
	                " count(CASE WHEN at >= ?1 THEN 1 END)"
	                " FROM audit WHERE action = 'unsigned'"
	                " GROUP BY result ORDER BY result",
	                since, 1, &s->reasons, &s->nreasons, err, errlen) != 0)
		return -1;
	if (db_mappings(db, cert_row, &cx, err, errlen) != 0)
		return -1;
	if (cx.oom)
		return seterr(err, errlen, "out of memory");
	if (crls_read(db, s, err, errlen) != 0)
		return -1;
	return chain_read(db, s, err, errlen);
}

int db_stats_read(struct db *db, time_t since, struct db_stats *out, char *err,
                  size_t errlen)
{
	int rc;

	memset(out, 0, sizeof(*out));
	if (db_exec_sql(db, "BEGIN", err, errlen) != 0)
		return -1;
	rc = stats_read(db, since, out, err, errlen);
	db_rollback(db);
	if (rc != 0)
		db_stats_free(out);
	return rc;
}

void db_stats_free(struct db_stats *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->nactions; i++)
		free(s->actions[i].key);
	for (size_t i = 0; i < s->nreasons; i++)
		free(s->reasons[i].key);
	for (size_t i = 0; i < s->ncerts; i++) {
		free(s->certs[i].mailbox);
		free(s->certs[i].kind);
		free(s->certs[i].serial);
	}
	for (size_t i = 0; i < s->ncrls; i++)
		free(s->crls[i].issuer);
	for (size_t i = 0; i < s->nnodes; i++)
		free(s->nodes[i].node);
	free(s->nodes);
	free(s->actions);
	free(s->reasons);
	free(s->certs);
	free(s->crls);
	memset(s, 0, sizeof(*s));
}
