/*
 * audit -- smimectl audit verify: walk the audit log's hash chain (schema
 * 5) and report the first broken link.  Evidence for non-repudiation
 * (Pasal 3, 8): a row changed, deleted, inserted or moved after it was
 * written breaks the chain at that row or the one after it.
 */
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "smimectl.h"

static const char *problem_key(enum db_audit_problem p)
{
	switch (p) {
	case DB_AUDIT_HASH_MISSING: return "hash-missing";
	case DB_AUDIT_PREV_MISSING: return "prev-hash-missing";
	case DB_AUDIT_CHANGED: return "content-changed";
	case DB_AUDIT_LINK: return "link-broken";
	default: return "ok";
	}
}

static void problem_text(const struct db_audit_check *c, char *buf,
                         size_t len)
{
	switch (c->problem) {
	case DB_AUDIT_HASH_MISSING:
		snprintf(buf, len, "hash missing (the row was not written by "
		                   "smime-milter or smimectl, or its hash was "
		                   "removed)");
		break;
	case DB_AUDIT_PREV_MISSING:
		snprintf(buf, len, "prev_hash missing or malformed");
		break;
	case DB_AUDIT_CHANGED:
		snprintf(buf, len, "row content changed (its columns do not "
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
	default: buf[0] = '\0'; break;
	}
}

static int audit_verify(int argc, char **argv)
{
	struct config *cfg;
	struct db *db;
	struct db_audit_check c;
	char err[512], what[256];
	int json = 0, rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else
			die(EX_USAGE, "usage: audit verify [--json]");
	}
	cfg = load_config();
	become_user(cfg);
	db = open_db(cfg, DB_READONLY);
	rc = db_audit_verify(db, &c, err, sizeof(err));
	db_close(db);
	config_free(cfg);
	if (rc < 0)
		die(EX_TEMPFAIL, "audit verify: %s", err);
	problem_text(&c, what, sizeof(what));
	if (json) {
		printf("{\"ok\": %s, \"rows\": %lld, \"last_id\": %lld, "
		       "\"last_hash\": ",
		       rc == 0 ? "true" : "false", c.rows, c.last_id);
		json_str(c.last_hash);
		if (rc == 0)
			printf(", \"broken_id\": null, \"problem\": null, "
			       "\"message\": null}\n");
		else {
			printf(", \"broken_id\": %lld, \"problem\": ", c.bad_id);
			json_str(problem_key(c.problem));
			printf(", \"message\": ");
			json_str(what);
			printf("}\n");
		}
	} else if (rc == 0)
		printf("audit log OK: %lld rows, last hash %s\n", c.rows,
		       c.last_hash);
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
	die(EX_USAGE, "usage: audit verify [--json]");
	return EX_USAGE;
}
