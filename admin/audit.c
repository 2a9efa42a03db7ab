/*
 * audit -- smimectl audit verify: walk the audit log's hash chain (schema
 * 5) and report the first broken link, then check every RFC 3161 anchor
 * (schema 7).  smimectl audit anchor: a TSA's token over the head of the
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

/* The chain's verdict, text or JSON members (without the closing "}"). */
static void chain_print(int json, int rc, const struct db_audit_check *c)
{
	char what[256];

	audit_problem_text(c, what, sizeof(what));
	if (json) {
		printf("{\"ok\": %s, \"rows\": %lld, \"last_id\": %lld, "
		       "\"last_hash\": ",
		       rc == 0 ? "true" : "false", c->rows, c->last_id);
		json_str(c->last_hash);
		if (rc == 0)
			printf(", \"broken_id\": null, \"problem\": null, "
			       "\"message\": null");
		else {
			printf(", \"broken_id\": %lld, \"problem\": ",
			       c->bad_id);
			json_str(audit_problem_key(c->problem));
			printf(", \"message\": ");
			json_str(what);
		}
	} else if (rc == 0)
		printf("audit log OK: %lld rows, last hash %s\n", c->rows,
		       c->last_hash);
	else if (c->problem == DB_AUDIT_ANCHOR_MISSING)
		printf("audit log BROKEN at row %lld: %s\n", c->bad_id, what);
	else
		printf("audit log BROKEN at row %lld: %s\n"
		       "(%lld rows before it verify; last good row %lld, "
		       "hash %s)\n",
		       c->bad_id, what, c->rows, c->last_id, c->last_hash);
}

/* Check and print every anchor; returns how many do not hold. */
static size_t anchors_print(int json, int chain_rc,
                            const struct db_audit_check *c,
                            const struct db_audit_anchor *a, size_t n,
                            const char *ca_file)
{
	size_t bad = 0;
	char why[1024], when[32];

	if (json)
		printf(", \"anchors\": [");
	for (size_t i = 0; i < n; i++) {
		enum anchor_problem p = anchor_check(&a[i], c, chain_rc,
		                                     ca_file, why, sizeof(why));
		time_fmt(a[i].gen_time, when, sizeof(when));
		bad += p != ANCHOR_OK;
		if (json) {
			printf("%s{\"id\": %lld, \"audit_id\": %lld, "
			       "\"hash\": ",
			       i ? ", " : "", a[i].id, a[i].audit_id);
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
		printf("], \"anchors_ok\": %zu", n - bad);
	else if (bad)
		printf("%zu anchors ok, %zu BROKEN\n", n - bad, bad);
	else
		printf("%zu anchors ok\n", n);
	return bad;
}

static int audit_verify(int argc, char **argv)
{
	struct config *cfg;
	struct db *db;
	struct db_audit_check c;
	struct db_audit_anchor *anchors;
	size_t nanchors, bad;
	char err[512];
	const char *anchor_hash = NULL;
	long long anchor_id = 0;
	int json = 0, rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (strcmp(argv[i], "--anchor") == 0 && i + 1 < argc) {
			/* ID:HASH, as recorded from an earlier run */
			const char *a = argv[++i], *colon = strchr(a, ':');
			char *end;
			anchor_id = strtoll(a, &end, 10);
			if (colon == NULL || end != colon || anchor_id <= 0 ||
			    strlen(colon + 1) != 64 ||
			    strspn(colon + 1, "0123456789abcdefABCDEF") != 64)
				die(EX_USAGE,
				    "--anchor wants ID:HASH (a row id "
				    "and its 64 hex digit hash), not "
				    "'%s'",
				    a);
			anchor_hash = colon + 1;
		} else
			die(EX_USAGE, "usage: audit verify [--anchor ID:HASH] "
			              "[--json]");
	}
	cfg = load_config();
	db = open_db_as_user(cfg, DB_READONLY);
	rc = db_audit_verify_anchors(db, anchor_id, anchor_hash, &c, &anchors,
	                             &nanchors, err, sizeof(err));
	db_close(db);
	if (rc < 0) {
		config_free(cfg);
		die(EX_TEMPFAIL, "audit verify: %s", err);
	}
	chain_print(json, rc, &c);
	bad = anchors_print(json, rc, &c, anchors, nanchors,
	                    cfg->timestamp_ca_file);
	if (json)
		printf("}\n");
	db_audit_anchors_free(anchors, nanchors);
	config_free(cfg);
	return rc == 0 && bad == 0 ? EX_OK : 1;
}

/* smimectl audit anchor: a token over the head of a chain that verifies. */
static int audit_anchor(int argc, char **argv)
{
	unsigned char digest[TSA_DIGEST_LEN], *der = NULL;
	struct db_audit_check c;
	struct config *cfg;
	struct db *db;
	char err[1024], when[32];
	size_t len = 0;
	time_t gen = 0;
	int rc;

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
	rc = db_audit_verify(db, 0, NULL, &c, err, sizeof(err));
	if (rc < 0)
		die(EX_TEMPFAIL, "audit anchor: %s", err);
	if (rc > 0)
		die(1,
		    "audit anchor: the audit log is BROKEN at row %lld (see "
		    "smimectl audit verify): not anchored",
		    c.bad_id);
	if (c.rows == 0) {
		printf("the audit log is empty: nothing to anchor\n");
		db_close(db);
		config_free(cfg);
		return EX_OK;
	}
	/* the imprint: the 32 bytes of the head row's hash */
	if (anchor_digest(c.last_hash, digest) != 0)
		die(EX_SOFTWARE, "audit anchor: bad hash %s", c.last_hash);
	if (tsa_request(cfg->timestamp_url, cfg->timestamp_timeout * 1000,
	                digest, sizeof(digest), cfg->timestamp_ca_file, &der,
	                &len, &gen, err, sizeof(err)) != 0)
		die(1, "audit anchor: TSA %s: %s: nothing stored",
		    cfg->timestamp_url, err);
	if (db_audit_anchor_add(db, c.last_id, c.last_hash, der, len, gen,
	                        cfg->timestamp_url, err, sizeof(err)) < 0) {
		OPENSSL_free(der);
		die(EX_TEMPFAIL, "audit anchor: %s", err);
	}
	OPENSSL_free(der);
	printf("anchored audit row %lld at %s by TSA %s\n", c.last_id,
	       time_fmt(gen, when, sizeof(when)), cfg->timestamp_url);
	db_close(db);
	config_free(cfg);
	return EX_OK;
}

int cmd_audit(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "verify") == 0)
		return audit_verify(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "anchor") == 0)
		return audit_anchor(argc - 1, argv + 1);
	die(EX_USAGE, "usage: audit verify [--anchor ID:HASH] [--json] | "
	              "audit anchor");
	return EX_USAGE;
}
