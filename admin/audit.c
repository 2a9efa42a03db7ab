/*
 * audit -- smimectl audit verify: walk the audit log's hash chain (schema
 * 5) and report the first broken link.  Evidence for non-repudiation
 * (Pasal 3, 8): a row changed, deleted, inserted or moved after it was
 * written breaks the chain at that row or the one after it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "smimectl.h"

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

static int audit_verify(int argc, char **argv)
{
	struct config *cfg;
	struct db *db;
	struct db_audit_check c;
	char err[512], what[256];
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
	rc = db_audit_verify(db, anchor_id, anchor_hash, &c, err, sizeof(err));
	db_close(db);
	config_free(cfg);
	if (rc < 0)
		die(EX_TEMPFAIL, "audit verify: %s", err);
	audit_problem_text(&c, what, sizeof(what));
	if (json) {
		printf("{\"ok\": %s, \"rows\": %lld, \"last_id\": %lld, "
		       "\"last_hash\": ",
		       rc == 0 ? "true" : "false", c.rows, c.last_id);
		json_str(c.last_hash);
		if (rc == 0)
			printf(", \"broken_id\": null, \"problem\": null, "
			       "\"message\": null}\n");
		else {
			printf(", \"broken_id\": %lld, \"problem\": ",
			       c.bad_id);
			json_str(audit_problem_key(c.problem));
			printf(", \"message\": ");
			json_str(what);
			printf("}\n");
		}
	} else if (rc == 0)
		printf("audit log OK: %lld rows, last hash %s\n", c.rows,
		       c.last_hash);
	else if (c.problem == DB_AUDIT_ANCHOR_MISSING)
		printf("audit log BROKEN at row %lld: %s\n", c.bad_id, what);
	else
		printf("audit log BROKEN at row %lld: %s\n"
		       "(%lld rows before it verify; last good row %lld, "
		       "hash %s)\n",
		       c.bad_id, what, c.rows, c.last_id, c.last_hash);
	return rc == 0 ? EX_OK : 1;
}

int cmd_audit(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "verify") == 0)
		return audit_verify(argc - 1, argv + 1);
	die(EX_USAGE, "usage: audit verify [--anchor ID:HASH] [--json]");
	return EX_USAGE;
}
