/*
 * cert -- smimectl list, map, unmap, revoke and show: the signing
 * certificates in the database and the mailboxes they are mapped to.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include "certstore.h"
#include "db.h"
#include "util.h"
#include "smimectl.h"

/* ---- list ------------------------------------------------------------ */

struct list_state {
	int json;
	int n;
	const char *kind, *unit, *status;
};

/* One certificate as a member of the list --json array. */
static void list_json(const struct list_state *ls, const char *address,
                      const struct db_cert *c)
{
	const struct json_kv kv[] = {
		{ "key_backend", c->key_backend },
		{ "owner", c->owner },
		{ "nip", c->nip },
		{ "unit", c->unit },
		{ "contact", c->contact ? c->contact : c->mailbox },
	};

	json_row_begin(ls->n, c->id, "mailbox", c->mailbox);
	printf(", \"mapped\": %s, \"kind\": ", address ? "true" : "false");
	json_str(c->kind);
	printf(", \"status\": ");
	json_str(c->status);
	json_cert_fields(c->serial, c->fingerprint, c->subject, c->issuer,
	                 c->not_before, c->not_after);
	json_row_end(kv, sizeof(kv) / sizeof(kv[0]));
}

static int list_row(void *arg, const char *address, const struct db_cert *c)
{
	struct list_state *ls = arg;
	char na[40];

	if ((ls->kind && !str_ieq(ls->kind, c->kind)) ||
	    (ls->unit && !str_ieq(ls->unit, c->unit ? c->unit : "")) ||
	    (ls->status && !str_ieq(ls->status, c->status)))
		return 0;
	if (ls->json)
		list_json(ls, address, c);
	else {
		if (ls->n == 0)
			printf("%-4s %-32s %-10s %-10s %-20s %-10s %s\n", "ID",
			       "MAILBOX", "KIND", "STATUS", "SERIAL", "EXPIRES",
			       "SUBJECT");
		printf("%-4lld %-32s %-10s %-10s %-20.20s %-10.10s %s\n", c->id,
		       c->mailbox, c->kind, c->status, c->serial,
		       time_fmt(c->not_after, na, sizeof(na)), c->subject);
	}
	ls->n++;
	return 0;
}

int cmd_list(int argc, char **argv)
{
	struct list_state ls = { 0, 0, NULL, NULL, NULL };
	struct config *cfg;
	struct db *db;
	char err[1024];

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			ls.json = 1;
		else if (strcmp(argv[i], "--kind") == 0 && i + 1 < argc)
			ls.kind = argv[++i];
		else if (strcmp(argv[i], "--unit") == 0 && i + 1 < argc)
			ls.unit = argv[++i];
		else if (strcmp(argv[i], "--status") == 0 && i + 1 < argc)
			ls.status = argv[++i];
		else
			die(EX_USAGE, "usage: list [--kind K] [--unit U] "
			              "[--status S] [--json]");
	}
	cfg = load_config();
	db = open_db_as_user(cfg, DB_READONLY);
	if (ls.json)
		printf("[");
	if (db_certs(db, list_row, &ls, err, sizeof(err)) != 0)
		die(EX_SOFTWARE, "%s", err);
	if (ls.json)
		printf("%s]\n", ls.n ? "\n" : "");
	else if (ls.n == 0)
		printf("no certificates (import one with \"smimectl "
		       "import\")\n");
	db_close(db);
	config_free(cfg);
	return EX_OK;
}

/* ---- map, unmap, revoke ---------------------------------------------- */

/* Resolve CERT (id, serial or fingerprint) or die with a clear message. */
static void find_cert(struct db *db, const char *spec, struct db_cert *c)
{
	char err[512];
	int rc = db_cert_find(db, spec, c, err, sizeof(err));

	if (rc < 0)
		die(EX_DATAERR, "%s", err);
	if (rc == 0)
		die(EX_NOINPUT,
		    "no certificate '%s' (give the id shown by list, the "
		    "serial or the SHA-256 fingerprint)",
		    spec);
}

int cmd_map(int argc, char **argv)
{
	struct config *cfg;
	struct db *db;
	struct db_cert c;
	STACK_OF(X509) *sk;
	char err[1024], mbox[320];

	if (argc != 3)
		die(EX_USAGE, "usage: map ADDR CERT");
	mailbox_arg(NULL, argv[1], mbox, sizeof(mbox));
	cfg = load_config();
	db = open_db_as_user(cfg, DB_READWRITE);
	find_cert(db, argv[2], &c);
	if (!str_ieq(c.status, "active"))
		die(EX_DATAERR, "refused: certificate %s is %s", c.serial,
		    c.status);
	sk = cert_stack_from_pem(c.cert_pem);
	if (sk_X509_num(sk) <= 0)
		snprintf(err, sizeof(err), "stored certificate unreadable");
	else if (cert_check_signing(sk_X509_value(sk, 0), mbox, time(NULL), err,
	                            sizeof(err)) == 0)
		err[0] = '\0';
	sk_X509_pop_free(sk, X509_free); /* before die(): nothing left over */
	if (err[0] != '\0')
		die(EX_DATAERR, "refused: certificate %s for %s: %s", c.serial,
		    mbox, err);
	if (db_begin(db, err, sizeof(err)) != 0 ||
	    db_map(db, mbox, c.id, c.kind, actor(), err, sizeof(err)) != 0 ||
	    db_commit(db, err, sizeof(err)) != 0) {
		db_rollback(db);
		die(EX_TEMPFAIL, "nothing changed: %s", err);
	}
	printf("%s now signs with certificate %s (id %lld)\n", mbox, c.serial,
	       c.id);
	printf("run \"smimectl reload\" (or send SIGUSR1) to apply\n");
	db_cert_clear(&c);
	db_close(db);
	config_free(cfg);
	return EX_OK;
}

int cmd_unmap(int argc, char **argv)
{
	struct config *cfg;
	struct db *db;
	char err[1024], mbox[320];
	int rc;

	if (argc != 2)
		die(EX_USAGE, "usage: unmap ADDR");
	mailbox_arg(NULL, argv[1], mbox, sizeof(mbox));
	cfg = load_config();
	db = open_db_as_user(cfg, DB_READWRITE);
	if (db_begin(db, err, sizeof(err)) != 0 ||
	    (rc = db_unmap(db, mbox, actor(), err, sizeof(err))) < 0 ||
	    db_commit(db, err, sizeof(err)) != 0) {
		db_rollback(db);
		die(EX_TEMPFAIL, "nothing changed: %s", err);
	}
	if (rc == 0)
		die(EX_NOINPUT, "%s is not mapped", mbox);
	printf("%s unmapped; its mail will no longer be signed after "
	       "\"smimectl reload\"\n",
	       mbox);
	db_close(db);
	config_free(cfg);
	return EX_OK;
}

static const char *const revocation_reasons[] = {
	"unspecified",        "keyCompromise",      "cACompromise",
	"affiliationChanged", "superseded",         "cessationOfOperation",
	"certificateHold",    "privilegeWithdrawn", "aACompromise",
};

int cmd_revoke(int argc, char **argv)
{
	struct config *cfg;
	struct db *db;
	struct db_cert c;
	const char *reason = NULL, *spec = NULL;
	char err[1024];
	int rc, known = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--reason") == 0 && i + 1 < argc)
			reason = argv[++i];
		else if (spec == NULL && argv[i][0] != '-')
			spec = argv[i];
		else
			spec = NULL, i = argc;
	}
	if (spec == NULL || reason == NULL)
		die(EX_USAGE, "usage: revoke CERT --reason REASON");
	for (size_t i = 0;
	     i < sizeof(revocation_reasons) / sizeof(revocation_reasons[0]);
	     i++)
		if (strcmp(reason, revocation_reasons[i]) == 0)
			known = 1;
	if (!known)
		die(EX_USAGE,
		    "unknown reason '%s' (unspecified, keyCompromise, "
		    "cACompromise, affiliationChanged, superseded, "
		    "cessationOfOperation, certificateHold, "
		    "privilegeWithdrawn, "
		    "aACompromise)",
		    reason);
	cfg = load_config();
	db = open_db_as_user(cfg, DB_READWRITE);
	find_cert(db, spec, &c);
	if (db_begin(db, err, sizeof(err)) != 0 ||
	    (rc = db_revoke_id(db, c.id, reason, time(NULL), actor(), err,
	                       sizeof(err))) < 0 ||
	    db_commit(db, err, sizeof(err)) != 0) {
		db_rollback(db);
		die(EX_TEMPFAIL, "nothing changed: %s", err);
	}
	if (rc == 0)
		printf("certificate %s (id %lld) was already revoked\n",
		       c.serial, c.id);
	else
		printf("certificate %s (id %lld, %s) revoked by %s: %s\n"
		       "run \"smimectl reload\" (or send SIGUSR1) so the "
		       "milter "
		       "stops using it\n",
		       c.serial, c.id, c.mailbox, actor(), reason);
	db_cert_clear(&c);
	db_close(db);
	config_free(cfg);
	return EX_OK;
}

/* ---- show ------------------------------------------------------------ */

static void show_cert(const struct db_cert *c, const char *mapped_to)
{
	char nb[40], na[40], ra[40];

	printf("certificate id %lld\n", c->id);
	printf("  mailbox:      %s%s\n", c->mailbox,
	       mapped_to ? "" : " (not mapped)");
	printf("  kind:         %s\n", c->kind);
	printf("  status:       %s", c->status);
	if (c->revoked_at)
		printf(" since %s (%s)",
		       time_fmt(c->revoked_at, ra, sizeof(ra)),
		       c->revocation_reason ? c->revocation_reason : "");
	printf("\n  owner:        %s\n", c->owner ? c->owner : "-");
	printf("  NIP:          %s\n", c->nip ? c->nip : "-");
	printf("  unit:         %s\n", c->unit ? c->unit : "-");
	printf("  alerts go to: %s\n", c->contact ? c->contact : c->mailbox);
	printf("  subject:      %s\n", c->subject);
	printf("  issuer:       %s\n", c->issuer);
	printf("  serial:       %s\n", c->serial);
	printf("  SHA-256:      %s\n", c->fingerprint);
	printf("  valid:        %s .. %s\n",
	       time_fmt(c->not_before, nb, sizeof(nb)),
	       time_fmt(c->not_after, na, sizeof(na)));
	printf("  key:          %s %s\n", c->key_backend, c->key_location);
}

struct show_state {
	const char *address; /* show this mailbox's certificate, or */
	long long id;        /* tell whether this certificate is mapped */
	int found;
};

static int show_mapping(void *arg, const char *address, const struct db_cert *c)
{
	struct show_state *ss = arg;

	if (ss->address && strcmp(address, ss->address) == 0) {
		show_cert(c, address);
		ss->found = 1;
		return 1;
	}
	if (!ss->address && c->id == ss->id) {
		ss->found = 1;
		return 1;
	}
	return 0;
}

static int history_row(void *arg, time_t at, const char *address,
                       long long cert_id, const char *event, const char *detail,
                       const char *who)
{
	char t[40], cert[48] = "";

	/* recipient certificate events name their serial in detail */
	if (cert_id > 0)
		snprintf(cert, sizeof(cert), "  certificate %lld", cert_id);
	printf("  %s  %-10s %s%s%s%s  by %s\n", time_fmt(at, t, sizeof(t)),
	       event, address ? address : "-", cert,
	       detail ? (cert[0] ? ": " : "  ") : "", detail ? detail : "",
	       who ? who : "?");
	return 0;
}

/* One recipient certificate of the address shown. */
static int show_recipient(void *arg, const struct db_recipient *r)
{
	char t[40];
	int *n = arg;

	if ((*n)++ == 0)
		printf("recipient certificates (for encryption):\n");
	time_fmt(r->not_after, t, sizeof(t));
	printf("  %s  serial %s  until %.10s  %s  (%s)  %s\n", r->fingerprint,
	       r->serial, t,
	       str_ieq(r->status, "active") && r->not_after < time(NULL)
	               ? "expired"
	               : r->status,
	       r->source, r->subject);
	return 0;
}

int cmd_show(int argc, char **argv)
{
	struct config *cfg;
	struct db *db;
	struct show_state ss;
	struct db_cert c;
	char err[1024], mbox[320];

	if (argc != 2)
		die(EX_USAGE, "usage: show ADDR|CERT");
	memset(&ss, 0, sizeof(ss));
	cfg = load_config();
	db = open_db_as_user(cfg, DB_READONLY);
	if (strchr(argv[1], '@')) {
		mailbox_arg(NULL, argv[1], mbox, sizeof(mbox));
		printf("mailbox %s\n", mbox);
		ss.address = mbox;
		if (db_mappings(db, show_mapping, &ss, err, sizeof(err)) != 0)
			die(EX_SOFTWARE, "%s", err);
		if (!ss.found)
			printf("  not mapped to any certificate\n");
		{
			int nr = 0;
			if (db_recipients(db, mbox, 0, show_recipient, &nr, err,
			                  sizeof(err)) != 0)
				die(EX_SOFTWARE, "%s", err);
		}
		printf("history:\n");
		if (db_history(db, mbox, 0, history_row, NULL, err,
		               sizeof(err)) != 0)
			die(EX_SOFTWARE, "%s", err);
	} else {
		find_cert(db, argv[1], &c);
		ss.id = c.id;
		if (db_mappings(db, show_mapping, &ss, err, sizeof(err)) != 0)
			die(EX_SOFTWARE, "%s", err);
		show_cert(&c, ss.found ? c.mailbox : NULL);
		printf("history:\n");
		if (db_history(db, NULL, c.id, history_row, NULL, err,
		               sizeof(err)) != 0)
			die(EX_SOFTWARE, "%s", err);
		db_cert_clear(&c);
	}
	db_close(db);
	config_free(cfg);
	return EX_OK;
}
