/*
 * migrate -- smimectl migrate --to URI: copy the configured SQLite
 * database into an empty PostgreSQL one (issue 16), audit chain included,
 * and check the copy before saying so (db_copy_to, lib/db_copy.c).  The
 * source is read in one read transaction, so a running milter cannot tear
 * the copy; but what it writes after the snapshot would not be copied, so
 * a source written during the copy rolls the copy back: stop the milter
 * and the timers first.  Prints a per-table summary and the next steps.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "smimectl.h"

#define MIGRATE_USAGE "usage: migrate --to postgresql://USER@HOST/DB"

/* The exit code of a db_copy_to result. */
static int migrate_exit(int rc)
{
	switch (rc) {
	case 0:
		return EX_OK;
	case DB_COPY_TARGET:
		return EX_UNAVAILABLE;
	case DB_COPY_NOT_EMPTY:
		return EX_CANTCREAT;
	case DB_COPY_SRC_BROKEN:
	case DB_COPY_SRC_TEXT:
		return EX_DATAERR;
	case DB_COPY_SRC_CHANGED:
		return EX_TEMPFAIL;
	case DB_COPY_MISMATCH:
		return EX_SOFTWARE;
	default:
		return EX_IOERR;
	}
}

/* The tables as far as the copy came: rows in the source, rows copied. */
static void migrate_summary(const struct db_copy_report *r)
{
	printf("%-20s %10s %10s\n", "table", "source", "copied");
	for (size_t i = 0; i < r->n; i++)
		printf("%-20s %10lld %10lld\n", r->tables[i].name,
		       r->tables[i].rows, r->tables[i].copied);
}

int cmd_migrate(int argc, char **argv)
{
	const char *to = NULL;
	const struct long_arg opts[] = { { "to", &to }, { NULL, NULL } };
	struct db_copy_report r;
	struct config *cfg;
	struct db *src;
	char err[2048];
	int rc;

	if (parse_long_args(argc, argv, opts) != 0 || to == NULL ||
	    optind != argc)
		die(EX_USAGE, MIGRATE_USAGE);
	if (!db_target_is_pg(to))
		die(EX_USAGE, "--to %s: not a postgresql:// URI (%s)", to,
		    MIGRATE_USAGE);
	cfg = load_config();
	if (db_target_is_pg(cfg->database))
		die(EX_USAGE,
		    "the database of %s is already PostgreSQL (%s): migrate "
		    "copies an SQLite database",
		    cfg->path, cfg->database);
	/* an old schema dies here, saying to run smimectl init */
	src = open_db_as_user(cfg, DB_READWRITE);
	rc = db_copy_to(src, to, &r, err, sizeof(err));
	db_close(src);
	/* how far the copy came; not when it never started */
	if (r.n > 0 && rc != DB_COPY_NOT_EMPTY && rc != DB_COPY_SRC_BROKEN &&
	    rc != DB_COPY_TARGET)
		migrate_summary(&r);
	if (rc != 0) {
		db_copy_report_free(&r);
		die(migrate_exit(rc), "migrate: %s", err);
	}
	printf("audit chain: %lld rows, head row %lld, hash %s (the same in "
	       "the source and the copy)\n"
	       "identity sequences set past the largest id: %lld\n"
	       "copied %s to %s and verified.\n"
	       "next steps:\n"
	       "  1. set  database = \"%s\";  in %s on every node\n"
	       "  2. smimectl -c %s audit verify  (on the copy)\n"
	       "  3. smimectl reload, or start the milter and the timers "
	       "again\n"
	       "  keep %s as it is: it is the record of what was copied\n",
	       r.dst_audit.rows, r.dst_audit.last_id, r.dst_audit.last_hash,
	       r.identities, cfg->database, to, to, cfg->path, cfg->path,
	       cfg->database);
	db_copy_report_free(&r);
	config_free(cfg);
	return EX_OK;
}
