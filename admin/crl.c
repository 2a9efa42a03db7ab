/*
 * crl -- smimectl crl import: CRLs, checked against ca_file, mark the
 * certificates they list revoked and keep every serial for later imports.
 * crl_import_one is also how crl fetch (crl_fetch.c) stores what it gets.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "crl.h"
#include "db.h"
#include "smimectl.h"

int crl_import_one(const struct config *cfg, struct db *db, X509_CRL *crl,
                   const char *name, const struct db_crl_source *src,
                   struct crl_applied *out, char *err, size_t errlen)
{
	if (cfg->ca_file == NULL)
		fprintf(stderr,
		        "smimectl: warning: no ca_file configured, the "
		        "signature of %s is not verified\n",
		        name);
	return crl_verify_apply(db, crl, cfg->ca_file, actor(), src, out, err,
	                        errlen);
}

/* The CRL file path, read and (with ca_file) verified, or die. */
static X509_CRL *crl_load(const struct config *cfg, const char *path)
{
	char err[1024];
	X509_CRL *crl = crl_read_file(path, err, sizeof(err));

	if (crl == NULL)
		die(EX_DATAERR, "%s", err);
	if (cfg->ca_file &&
	    crl_verify(crl, cfg->ca_file, err, sizeof(err)) != 0)
		die(EX_DATAERR, "%s: refused: %s", path, err);
	return crl;
}

/* The CRL crl (read from path) applied in one transaction; returns how
 * many certificates it marked revoked.  Frees crl. */
static int crl_import_file(const struct config *cfg, struct db *db,
                           const char *path, X509_CRL *crl)
{
	struct crl_applied a;
	char err[1024];
	int rc = crl_import_one(cfg, db, crl, path, NULL, &a, err, sizeof(err));

	X509_CRL_free(crl);
	if (rc > 0)
		die(EX_DATAERR, "%s: refused: %s", path, err);
	if (rc < 0)
		die(EX_TEMPFAIL, "nothing changed: %s", err);
	printf("%s: %d serial%s listed, %d certificate%s marked "
	       "revoked\n",
	       path, a.entries, a.entries == 1 ? "" : "s", a.changed,
	       a.changed == 1 ? "" : "s");
	rc = a.changed;
	crl_applied_clear(&a);
	return rc;
}

int cmd_crl(int argc, char **argv)
{
	X509_CRL **crls; /* by argv index */
	int total = 0;
	struct config *cfg;
	struct db *db;

	if (argc >= 2 && strcmp(argv[1], "fetch") == 0)
		return cmd_crl_fetch(argc - 1, argv + 1);
	if (argc < 3 || strcmp(argv[1], "import") != 0)
		die(EX_USAGE,
		    "usage: crl import FILE... | crl fetch [--quiet]");
	cfg = load_config();
	/* read and verify every CRL before the database is touched */
	crls = calloc((size_t)argc, sizeof(*crls));
	if (crls == NULL)
		die(EX_OSERR, "out of memory");
	for (int f = 2; f < argc; f++)
		crls[f] = crl_load(cfg, argv[f]);
	db = open_db_as_user(cfg, DB_READWRITE);
	for (int f = 2; f < argc; f++)
		total += crl_import_file(cfg, db, argv[f], crls[f]);
	free(crls);
	if (total > 0)
		printf("run \"smimectl reload\" (or send SIGUSR1) so the "
		       "milter "
		       "stops using them\n");
	db_close(db);
	config_free(cfg);
	return EX_OK;
}
