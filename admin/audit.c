/*
 * audit -- smimectl audit verify: walk the audit log's hash chain (schema
 * 5), one chain per node (schema 9), and report the first broken link
 * of each, then check every RFC 3161 anchor (schema 7).  smimectl audit anchor: a TSA's token over the head of the
 * chain.  Evidence for non-repudiation (Pasal 3, 8): a row changed,
 * deleted, inserted or moved after it was written breaks the chain at
 * that row or the one after it; an anchor dates every row up to it and
 * catches a chain recomputed after a change.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "anchor.h"
#include "smimectl.h"
#include "tsa.h"

const char *audit_problem_key(enum db_audit_problem p)
{
	switch (p) {
	case DB_AUDIT_HASH_MISSING:
		return "hash-missing";
	case DB_AUDIT_PREV_MISSING:
		return "prev-hash-missing";
	case DB_AUDIT_CHANGED:
		return "content-changed";
	case DB_AUDIT_LINK:
		return "link-broken";
	case DB_AUDIT_ANCHOR_CHANGED:
		return "anchor-changed";
	case DB_AUDIT_ANCHOR_MISSING:
		return "anchor-missing";
	default:
		return "ok";
	}
}

void audit_problem_text(const struct db_audit_check *c, char *buf, size_t len)
{
	switch (c->problem) {
	case DB_AUDIT_HASH_MISSING:
		snprintf(buf, len,
		         "hash missing (the row was not written by "
		         "smime-milter or smimectl, or its hash was "
		         "removed)");
		break;
	case DB_AUDIT_PREV_MISSING:
		snprintf(buf, len, "prev_hash missing or malformed");
		break;
	case DB_AUDIT_CHANGED:
		snprintf(buf, len,
		         "row content changed (its columns do not "
		         "give its stored hash)");
		break;
	case DB_AUDIT_LINK:
		if (c->prev_id)
			snprintf(buf, len,
			         "prev_hash does not match the hash of row "
			         "%lld: a row was deleted, inserted or moved "
			         "between them",
			         c->prev_id);
		else
			snprintf(buf, len,
			         "prev_hash of the first row is not 64 zeros: "
			         "rows before it were deleted");
		break;
	case DB_AUDIT_ANCHOR_CHANGED:
		snprintf(buf, len,
		         "its hash is not the anchor given: the "
		         "chain was recomputed after a change at or "
		         "before this row");
		break;
	case DB_AUDIT_ANCHOR_MISSING:
		snprintf(buf, len,
		         "the anchor row is gone (the log ends at "
		         "row %lld): rows were deleted from the end",
		         c->prev_id);
		break;
	default:
		buf[0] = '\0';
		break;
	}
}

/* The JSON members of one chain's verdict (without braces). */
static void chain_json(int rc, const struct db_audit_check *c)
{
	char what[256];

	audit_problem_text(c, what, sizeof(what));
	printf("\"ok\": %s, \"rows\": %lld, \"last_id\": %lld, "
	       "\"last_hash\": ",
	       rc == 0 ? "true" : "false", c->rows, c->last_id);
	json_str(c->last_hash);
	if (rc == 0)
		printf(", \"broken_id\": null, \"problem\": null, "
		       "\"message\": null");
	else {
		printf(", \"broken_id\": %lld, \"problem\": ", c->bad_id);
		json_str(audit_problem_key(c->problem));
		printf(", \"message\": ");
		json_str(what);
	}
}

/* One node's chain in words: "node "N": audit log OK: ..." */
static void chain_text(int rc, const struct db_audit_check *c)
{
	char what[256];

	audit_problem_text(c, what, sizeof(what));
	printf("node \"%s\": ", c->node);
	if (rc == 0)
		printf("audit log OK: %lld rows, last hash %s, head id %lld\n",
		       c->rows, c->last_hash, c->last_id);
	else if (c->problem == DB_AUDIT_ANCHOR_MISSING)
		printf("audit log BROKEN at row %lld: %s\n", c->bad_id, what);
	else
		printf("audit log BROKEN at row %lld: %s\n"
		       "(%lld rows before it verify; last good row %lld, "
		       "hash %s)\n",
		       c->bad_id, what, c->rows, c->last_id, c->last_hash);
}

/* Check every anchor of one chain; text: the broken ones and the count
 * (JSON: the list's members, after sep).  Returns how many fail. */
static size_t anchors_print(int json, const char *sep, int chain_rc,
                            const struct db_audit_check *c,
                            const struct db_audit_anchor *a, size_t n,
                            const char *ca_file)
{
	size_t bad = 0;
	char why[1024], when[32];

	for (size_t i = 0; i < n; i++) {
		enum anchor_problem p = anchor_check(&a[i], c, chain_rc,
		                                     ca_file, why, sizeof(why));
		time_fmt(a[i].gen_time, when, sizeof(when));
		bad += p != ANCHOR_OK;
		if (json) {
			printf("%s{\"id\": %lld, \"audit_id\": %lld, "
			       "\"node\": ",
			       i ? ", " : sep, a[i].id, a[i].audit_id);
			json_str(a[i].node);
			printf(", \"hash\": ");
			json_str(a[i].hash);
			printf(", \"gen_time\": ");
			json_str(when);
			printf(", \"tsa_url\": ");
			json_str(a[i].tsa_url);
			printf(", \"ok\": %s, \"problem\": ",
			       p == ANCHOR_OK ? "true" : "false");
			json_str(p == ANCHOR_OK ? NULL : anchor_problem_key(p));
			printf(", \"message\": ");
			json_str(p == ANCHOR_OK ? NULL : why);
			printf("}");
		} else if (p != ANCHOR_OK)
			printf("anchor %lld (audit row %lld, %s, TSA %s) "
			       "BROKEN: %s\n",
			       a[i].id, a[i].audit_id, when,
			       a[i].tsa_url ? a[i].tsa_url : "?", why);
	}
	if (json)
		;
	else if (bad)
		printf("node \"%s\": %zu anchors ok, %zu BROKEN\n", c->node,
		       n - bad, bad);
	else
		printf("node \"%s\": %zu anchors ok\n", c->node, n);
	return bad;
}

/* The verdict on one node's chain, kept for the JSON summary. */
struct chain_result {
	struct db_audit_check c;
	int rc;
	struct db_audit_anchor *anchors;
	size_t nanchors, bad;
};

/* --anchor ID:HASH into *id and *hash, or die. */
static void anchor_arg(const char *a, long long *id, const char **hash)
{
	const char *colon = strchr(a, ':');
	char *end;

	*id = strtoll(a, &end, 10);
	if (colon == NULL || end != colon || *id <= 0 ||
	    strlen(colon + 1) != 64 ||
	    strspn(colon + 1, "0123456789abcdefABCDEF") != 64)
		die(EX_USAGE,
		    "--anchor wants ID:HASH (a row id and its 64 hex digit "
		    "hash), not '%s'",
		    a);
	*hash = colon + 1;
}

/* The JSON document: every chain together at the top (the first broken
 * one, or all rows and the newest head), then each node's. */
static void verify_json(struct chain_result *r, size_t n, const char *ca_file)
{
	struct db_audit_check sum = { 0 };
	size_t first_bad = n, anchors_ok = 0;
	const char *sep = "";

	snprintf(sum.last_hash, sizeof(sum.last_hash), "%064d", 0);
	for (size_t i = 0; i < n; i++) {
		if (r[i].rc != 0 && first_bad == n)
			first_bad = i;
		sum.rows += r[i].c.rows;
		if (r[i].c.last_id > sum.last_id) {
			sum.last_id = r[i].c.last_id;
			memcpy(sum.last_hash, r[i].c.last_hash, 65);
		}
	}
	printf("{");
	if (first_bad < n)
		chain_json(r[first_bad].rc, &r[first_bad].c);
	else
		chain_json(0, &sum);
	printf(", \"anchors\": [");
	for (size_t i = 0; i < n; i++) {
		r[i].bad = anchors_print(1, sep, r[i].rc, &r[i].c, r[i].anchors,
		                         r[i].nanchors, ca_file);
		anchors_ok += r[i].nanchors - r[i].bad;
		if (r[i].nanchors)
			sep = ", ";
	}
	printf("], \"anchors_ok\": %zu, \"nodes\": [", anchors_ok);
	for (size_t i = 0; i < n; i++) {
		printf("%s{\"node\": ", i ? ", " : "");
		json_str(r[i].c.node);
		printf(", ");
		chain_json(r[i].rc, &r[i].c);
		printf(", \"anchors_ok\": %zu}", r[i].nanchors - r[i].bad);
	}
	printf("]}\n");
}

static int audit_verify(int argc, char **argv)
{
	struct config *cfg;
	struct db *db;
	struct chain_result *res;
	char err[512], **nodes = NULL, anode[DB_NODE_MAX + 1] = "";
	const char *anchor_hash = NULL, *only = NULL;
	long long anchor_id = 0;
	size_t nnodes = 0;
	int json = 0, failed = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (strcmp(argv[i], "--anchor") == 0 && i + 1 < argc)
			/* ID:HASH, as recorded from an earlier run */
			anchor_arg(argv[++i], &anchor_id, &anchor_hash);
		else if (strcmp(argv[i], "--node") == 0 && i + 1 < argc)
			only = argv[++i];
		else
			die(EX_USAGE, "usage: audit verify [--node NAME] "
			              "[--anchor ID:HASH] [--json]");
	}
	cfg = load_config();
	db = open_db_as_user(cfg, DB_READONLY);
	if (only == NULL &&
	    db_audit_nodes(db, &nodes, &nnodes, err, sizeof(err)) != 0)
		die(EX_TEMPFAIL, "audit verify: %s", err);
	if (only == NULL && nnodes == 0) { /* an empty log: one empty chain */
		db_audit_nodes_free(nodes, 0);
		nodes = NULL;
		only = "";
	}
	if (only && *only) { /* a name mistyped would verify "0 rows" */
		char **all = NULL;
		size_t nall = 0, k = 0;
		if (db_audit_nodes(db, &all, &nall, err, sizeof(err)) != 0)
			die(EX_TEMPFAIL, "audit verify: %s", err);
		while (k < nall && strcmp(all[k], only) != 0)
			k++;
		db_audit_nodes_free(all, nall);
		if (k == nall)
			die(1,
			    "audit verify: no audit chain of node \"%s\" "
			    "(no rows, no anchors)",
			    only);
	}
	if (only) {
		nodes = calloc(1, sizeof(*nodes));
		if (nodes == NULL || (nodes[0] = strdup(only)) == NULL)
			die(EX_OSERR, "out of memory");
		nnodes = 1;
	}
	/* the anchor is a row of one chain: --node's, the only one, or the
	 * one its row is in */
	if (anchor_id > 0 && nnodes == 1)
		snprintf(anode, sizeof(anode), "%s", nodes[0]);
	else if (anchor_id > 0 &&
	         db_audit_node_of(db, anchor_id, anode, sizeof(anode), err,
	                          sizeof(err)) <= 0)
		die(EX_USAGE,
		    "audit verify: row %lld is in no chain: give --node NAME "
		    "with --anchor",
		    anchor_id);
	res = calloc(nnodes, sizeof(*res));
	if (res == NULL)
		die(EX_OSERR, "out of memory");
	for (size_t i = 0; i < nnodes; i++) {
		int mine = anchor_id > 0 && strcmp(nodes[i], anode) == 0;
		struct chain_result *r = &res[i];
		r->rc = db_audit_verify_node_anchors(db, nodes[i],
		                                     mine ? anchor_id : 0,
		                                     mine ? anchor_hash : NULL,
		                                     &r->c, &r->anchors,
		                                     &r->nanchors, err,
		                                     sizeof(err));
		if (r->rc < 0)
			die(EX_TEMPFAIL, "audit verify: node \"%s\": %s",
			    nodes[i], err);
		if (!json) {
			chain_text(r->rc, &r->c);
			r->bad = anchors_print(0, "", r->rc, &r->c, r->anchors,
			                       r->nanchors,
			                       cfg->timestamp_ca_file);
		}
	}
	db_close(db);
	if (json)
		verify_json(res, nnodes, cfg->timestamp_ca_file);
	for (size_t i = 0; i < nnodes; i++) {
		failed |= res[i].rc != 0 || res[i].bad != 0;
		db_audit_anchors_free(res[i].anchors, res[i].nanchors);
	}
	free(res);
	db_audit_nodes_free(nodes, nnodes);
	config_free(cfg);
	return failed ? 1 : EX_OK;
}

/* Anchor the head of one node's chain: 0, 1 when the chain is broken or
 * empty (said why), or die when the TSA fails. */
static int anchor_node(struct db *db, const struct config *cfg,
                       const char *node)
{
	unsigned char digest[TSA_DIGEST_LEN], *der = NULL;
	struct db_audit_check c;
	char err[1024], when[32];
	size_t len = 0;
	time_t gen = 0;
	int rc = db_audit_verify_node(db, node, 0, NULL, &c, err, sizeof(err));

	if (rc < 0)
		die(EX_TEMPFAIL, "audit anchor: %s", err);
	if (rc > 0) {
		fprintf(stderr,
		        "smimectl: audit anchor: the audit log is BROKEN at "
		        "row %lld (node \"%s\", see smimectl audit verify): "
		        "not anchored\n",
		        c.bad_id, node);
		return 1;
	}
	if (c.rows == 0)
		return 0;
	/* the imprint: the 32 bytes of the head row's hash */
	if (anchor_digest(c.last_hash, digest) != 0)
		die(EX_SOFTWARE, "audit anchor: bad hash %s", c.last_hash);
	if (tsa_request(cfg->timestamp_url, cfg->timestamp_timeout * 1000,
	                digest, sizeof(digest), cfg->timestamp_ca_file, &der,
	                &len, &gen, err, sizeof(err)) != 0)
		die(1,
		    "audit anchor: TSA %s: %s: nothing stored for node \"%s\"",
		    cfg->timestamp_url, err, node);
	if (db_audit_anchor_add(db, c.last_id, c.last_hash, der, len, gen,
	                        cfg->timestamp_url, err, sizeof(err)) < 0) {
		OPENSSL_free(der);
		die(EX_TEMPFAIL, "audit anchor: %s", err);
	}
	OPENSSL_free(der);
	printf("anchored audit row %lld at %s by TSA %s\n", c.last_id,
	       time_fmt(gen, when, sizeof(when)), cfg->timestamp_url);
	return 0;
}

/*
 * smimectl audit anchor: a token over the head of every node's chain that
 * verifies.  Every node's, not only this host's: the job runs on one node
 * at a time (issue 16), and the chains of the others, or of a node gone,
 * must be dated too.
 */
static int audit_anchor(int argc, char **argv)
{
	struct config *cfg;
	struct db *db;
	char err[1024], **nodes = NULL;
	size_t n = 0;
	int broken = 0;

	(void)argv;
	if (argc != 1)
		die(EX_USAGE, "usage: audit anchor");
	cfg = load_config();
	if (cfg->timestamp_url == NULL)
		die(EX_CONFIG,
		    "audit anchor: timestamp_url is not set in %s (the RFC "
		    "3161 TSA to ask)",
		    cfg->path);
	db = open_db_as_user(cfg, DB_READWRITE);
	job_begin(db, "audit anchor"); /* one node anchors */
	if (db_audit_nodes(db, &nodes, &n, err, sizeof(err)) != 0)
		die(EX_TEMPFAIL, "audit anchor: %s", err);
	if (n == 0)
		printf("the audit log is empty: nothing to anchor\n");
	for (size_t i = 0; i < n; i++)
		broken |= anchor_node(db, cfg, nodes[i]);
	db_audit_nodes_free(nodes, n);
	db_close(db);
	config_free(cfg);
	return broken ? 1 : EX_OK;
}

int cmd_audit(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "verify") == 0)
		return audit_verify(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "anchor") == 0)
		return audit_anchor(argc - 1, argv + 1);
	die(EX_USAGE, "usage: audit verify [--node NAME] [--anchor ID:HASH] "
	              "[--json] | audit anchor");
	return EX_USAGE;
}
