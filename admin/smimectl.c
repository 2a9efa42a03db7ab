/*
 * smimectl -- the sidecar admin tool: database, certificates, mapping,
 * revocation.  A command table, one handler per subcommand; the handlers
 * live in one file per command family (see smimectl.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>

#include "config.h"
#include "smimectl.h"

static const struct command {
	const char *name;
	int (*fn)(int, char **);
	const char *help;
} commands[] = {
	{ "init", cmd_init, "create or migrate the database" },
	{ "import", cmd_import,
	  "--mailbox ADDR --kind individual|role|system (--p12 FILE "
	  "--passphrase-file FILE | --cert PEM --key PEM | --pkcs11-uri URI "
	  "[--cert PEM] | --cert PEM after renew/keygen)" },
	{ "keygen", cmd_keygen,
	  "--mailbox ADDR --pkcs11-uri URI [--key-type T] [--out DIR]" },
	{ "tokens", cmd_tokens, "[--module PATH]   (PKCS#11 slots and keys)" },
	{ "list", cmd_list, "[--kind K] [--unit U] [--status S] [--json]" },
	{ "map", cmd_map, "ADDR CERT   (CERT: id, serial or fingerprint)" },
	{ "unmap", cmd_unmap, "ADDR" },
	{ "renew", cmd_renew,
	  "ADDR [--key-type rsa2048|rsa3072|ec-p256] [--out DIR]" },
	{ "show", cmd_show, "ADDR|CERT   (details and history)" },
	{ "revoke", cmd_revoke, "CERT --reason REASON" },
	{ "expiring", cmd_expiring,
	  "--days N [--json]   (exit 0 OK, 1 WARNING, 2 CRITICAL)" },
	{ "notify", cmd_notify,
	  "[--dry-run]   (renewal alerts at alert_days, once each)" },
	{ "report", cmd_report,
	  "--year YYYY --format csv|json|html   (Pasal 24)" },
	{ "crl", cmd_crl,
	  "import FILE...   (PEM or DER) | fetch [--quiet] [-v]   (exit 0 "
	  "fresh, 1 a fetch failed, 2 a CRL expired or missing)" },
	{ "recipient", cmd_recipient,
	  "import|list|remove ...   (certificates to encrypt to: import "
	  "[--address ADDR] FILE..., list [--address ADDR] [--json], remove "
	  "ADDR|ID|SERIAL|FINGERPRINT)" },
	{ "audit", cmd_audit,
	  "verify [--anchor ID:HASH] [--json] | anchor   (the audit log's "
	  "hash chain and its RFC 3161 anchors; exit 1 at the first broken "
	  "row or anchor)" },
	{ "verify", cmd_verify,
	  "FILE... [--json]   (a disputed message: signature, signer status "
	  "then and now, audit row; exit 0 valid, 1 invalid, 2 could not "
	  "check)" },
	{ "stats", cmd_stats,
	  "[--prometheus FILE] [--json]   (counts, expiry, CRLs, audit chain, "
	  "milter up; FILE replaced atomically)" },
	{ "migrate", cmd_migrate,
	  "--to postgresql://...   (copy the SQLite database into an empty "
	  "PostgreSQL one, audit chain included, and verify the copy)" },
	{ "ocsp", cmd_ocsp, "check ADDR|FILE   (ask the OCSP responder)" },
	{ "reload", cmd_reload, "make the running milter reload (SIGUSR1)" },
};

static void usage(void)
{
	fprintf(stderr, "usage: smimectl [-c CONF] COMMAND [ARGS]\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(stderr, "  %-9s %s\n", commands[i].name,
		        commands[i].help);
	exit(EX_USAGE);
}

int main(int argc, char **argv)
{
	int i = 1;

	while (i < argc && argv[i][0] == '-') {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
			set_config_path(argv[i + 1]);
			i += 2;
		} else if (strcmp(argv[i], "-V") == 0) {
			printf("smimectl %s\n", SMIME_VERSION);
			return EX_OK;
		} else
			usage();
	}
	if (i >= argc)
		usage();
	umask(077);
	for (size_t c = 0; c < sizeof(commands) / sizeof(commands[0]); c++)
		if (strcmp(argv[i], commands[c].name) == 0)
			return commands[c].fn(argc - i, argv + i);
	fprintf(stderr, "smimectl: unknown command '%s'\n", argv[i]);
	usage();
	return EX_USAGE;
}
