/*
 * recipient -- smimectl recipient import|list|remove: the certificates of
 * the people (partner agencies) mail may be encrypted to.  Each is checked
 * against the trust bundle (ca_file), for encryption usage, validity and
 * the imported CRLs before it is stored (lib/recipient.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <openssl/x509v3.h>

#include "certstore.h"
#include "recipient.h"
#include "smimectl.h"

#define RELOAD_HINT "run \"smimectl reload\" (or send SIGUSR1) to apply\n"

/* "YYYY-MM-DD" of t (UTC) into buf (>= 11 bytes). */
static const char *day_fmt(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%d", &tm) == 0)
		snprintf(buf, len, "?");
	return buf;
}

/* --address ADDR or a remove spec with '@', lower-cased; dies on a bad
 * one. */
static void norm_address(const char *what, const char *in, char *out,
                         size_t outlen)
{
	char err[256];

	if (addr_from_header(in, out, outlen, err, sizeof(err)) != 0)
		die(EX_USAGE, "%s %s: %s", what, in, err);
	if (strchr(out, '@') == NULL)
		die(EX_USAGE, "%s %s: not a mail address", what, in);
}

/* ---- import ---------------------------------------------------------- */

struct rfile {
	const char *path;
	STACK_OF(X509) *certs; /* NULL: no certificate in it */
	char err[512];
};

/* Read path as the caller.  Dies (EX_NOINPUT) when it cannot be read;
 * a readable file without certificates leaves f->certs NULL. */
static void read_one(struct rfile *f)
{
	struct stat sb;
	int fd = open(f->path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		die(EX_NOINPUT, "%s: %s", f->path, strerror(errno));
	if (fstat(fd, &sb) != 0)
		die(EX_NOINPUT, "%s: %s", f->path, strerror(errno));
	if (!S_ISREG(sb.st_mode))
		die(EX_NOINPUT, "%s: %s", f->path,
		    S_ISDIR(sb.st_mode) ? "is a directory"
		                        : "not a regular file");
	close(fd);
	if (cert_read_file(f->path, &f->certs, f->err, sizeof(f->err)) != 0)
		f->certs = NULL;
}

static int is_ca(X509 *x)
{
	return X509_check_ca(x) != 0;
}

static int recipient_import(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "address", required_argument, NULL, 'a' },
		{ NULL, 0, NULL, 0 },
	};
	const char *usage = "usage: recipient import [--address ADDR] FILE...";
	struct config *cfg;
	struct db *db;
	struct rfile *files;
	STACK_OF(X509) *untrusted;
	char err[2048], addr[320], day[16];
	const char *address = NULL;
	int opt, nfiles, refused = 0, added_total = 0, leaves = 0;
	time_t now;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'a':
			norm_address("--address", optarg, addr, sizeof(addr));
			address = addr;
			break;
		default:
			die(EX_USAGE, "%s", usage);
		}
	}
	if (optind >= argc)
		die(EX_USAGE, "%s", usage);
	cfg = load_config();
	if (cfg->ca_file == NULL)
		die(EX_CONFIG,
		    "recipient certificates are checked against a trust "
		    "bundle: set ca_file in %s",
		    cfg->path ? cfg->path : "the configuration");

	/* read every file as the caller before anything is written */
	nfiles = argc - optind;
	files = calloc((size_t)nfiles, sizeof(*files));
	untrusted = sk_X509_new_null();
	if (files == NULL || untrusted == NULL)
		die(EX_OSERR, "out of memory");
	for (int i = 0; i < nfiles; i++) {
		files[i].path = argv[optind + i];
		read_one(&files[i]);
		/* CA certificates of any file are candidate intermediates */
		for (int j = 0; j < sk_X509_num(files[i].certs); j++) {
			X509 *x = sk_X509_value(files[i].certs, j);
			if (is_ca(x) && X509_up_ref(x) &&
			    !sk_X509_push(untrusted, x))
				X509_free(x);
		}
	}

	db = open_db_as_user(cfg, DB_READWRITE);
	if (db_begin(db, err, sizeof(err)) != 0)
		die(EX_TEMPFAIL, "nothing imported: %s", err);
	now = time(NULL);
	for (int i = 0; i < nfiles; i++) {
		struct rfile *f = &files[i];
		int nca = 0, nleaf = 0;
		if (f->certs == NULL) {
			fprintf(stderr,
			        "%s: refused: no certificate (PEM, DER or "
			        "PKCS#7)\n",
			        f->path);
			refused++;
			continue;
		}
		for (int j = 0; j < sk_X509_num(f->certs); j++) {
			X509 *x = sk_X509_value(f->certs, j);
			struct cert_info ci;
			char **emails = NULL;
			const char *one[2] = { address, NULL };
			const char *const *to;

			if (is_ca(x)) {
				nca++;
				continue;
			}
			nleaf++;
			leaves++;
			if (cert_info_get(x, &ci) != 0) {
				fprintf(stderr,
				        "%s: certificate %d: refused: "
				        "its details cannot be read\n",
				        f->path, j + 1);
				refused++;
				continue;
			}
			if (recipient_cert_check(db, x, untrusted, cfg->ca_file,
			                         now, err, sizeof(err)) != 0) {
				fprintf(stderr,
				        "%s: certificate %s (%s): refused: "
				        "%s\n",
				        f->path, ci.serial, ci.subject, err);
				refused++;
				cert_info_clear(&ci);
				continue;
			}
			if (address && !cert_has_email(x, address)) {
				fprintf(stderr,
				        "%s: certificate %s (%s): refused: it "
				        "does not carry %s\n",
				        f->path, ci.serial, ci.subject,
				        address);
				refused++;
				cert_info_clear(&ci);
				continue;
			}
			to = one;
			if (address == NULL) {
				emails = cert_emails(x);
				if (emails == NULL)
					die(EX_OSERR, "out of memory");
				to = (const char *const *)emails;
			}
			for (; *to; to++) {
				struct db_recipient r;
				int added = 0;
				if (recipient_from_cert(x, *to, "import", &r,
				                        err,
				                        sizeof(err)) != 0 ||
				    db_recipient_add(db, &r, actor(), &added,
				                     err, sizeof(err)) != 0) {
					db_rollback(db);
					die(EX_TEMPFAIL, "nothing imported: %s",
					    err);
				}
				if (added) {
					printf("imported %s for %s (valid "
					       "until "
					       "%s)\n",
					       ci.serial, r.address,
					       day_fmt(ci.not_after, day,
					               sizeof(day)));
					added_total++;
				} else
					printf("%s: certificate %s already "
					       "known\n",
					       r.address, ci.serial);
				db_recipient_clear(&r);
			}
			cert_emails_free(emails);
			cert_info_clear(&ci);
		}
		if (nleaf == 0)
			fprintf(stderr,
			        "%s: only CA certificate%s (%d), used as "
			        "intermediates\n",
			        f->path, nca == 1 ? "" : "s", nca);
	}
	if (db_commit(db, err, sizeof(err)) != 0) {
		db_rollback(db);
		die(EX_TEMPFAIL, "nothing imported: %s", err);
	}
	if (added_total > 0)
		printf(RELOAD_HINT);
	for (int i = 0; i < nfiles; i++)
		sk_X509_pop_free(files[i].certs, X509_free);
	free(files);
	sk_X509_pop_free(untrusted, X509_free);
	db_close(db);
	config_free(cfg);
	if (leaves == 0 && refused == 0) {
		fprintf(stderr, "smimectl: nothing to import: no end-entity "
		                "certificate in the files given\n");
		return EX_DATAERR;
	}
	return refused ? EX_DATAERR : EX_OK;
}

/* ---- list ------------------------------------------------------------ */

struct rlist {
	int json, n;
	time_t now;
};

static const char *state_of(const struct db_recipient *r, time_t now)
{
	if (strcmp(r->status, "active") != 0)
		return r->status;
	if (r->not_after < now)
		return "expired";
	if (r->not_before > now)
		return "not-yet-valid";
	return "active";
}

static int list_one(void *arg, const struct db_recipient *r)
{
	struct rlist *l = arg;
	char ca[40], day[16];
	const char *state = state_of(r, l->now);

	if (l->json) {
		const struct json_kv kv[] = {
			{ "status", r->status },
			{ "state", state },
			{ "source", r->source },
			{ "created_at", ca },
		};

		time_fmt(r->created_at, ca, sizeof(ca));
		json_row_begin(l->n, r->id, "address", r->address);
		json_cert_fields(r->serial, r->fingerprint, r->subject,
		                 r->issuer, r->not_before, r->not_after);
		json_row_end(kv, sizeof(kv) / sizeof(kv[0]));
	} else {
		if (l->n == 0)
			printf("%-4s %-32s %-20s %-10s %-8s %-7s %s\n", "ID",
			       "ADDRESS", "SERIAL", "EXPIRES", "STATE",
			       "SOURCE", "SUBJECT");
		printf("%-4lld %-32s %-20s %-10s %-8s %-7s %s\n", r->id,
		       r->address, r->serial,
		       day_fmt(r->not_after, day, sizeof(day)), state,
		       r->source, r->subject);
	}
	l->n++;
	return 0;
}

static int recipient_list(int argc, char **argv)
{
	const char *usage = "usage: recipient list [--address ADDR] [--json]";
	struct rlist l = { 0, 0, 0 };
	const char *address = NULL;
	struct config *cfg;
	struct db *db;
	char err[1024], addr[320];

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			l.json = 1;
		else if (strcmp(argv[i], "--address") == 0 && i + 1 < argc) {
			norm_address("--address", argv[++i], addr,
			             sizeof(addr));
			address = addr;
		} else
			die(EX_USAGE, "%s", usage);
	}
	cfg = load_config();
	db = open_db_as_user(cfg, DB_READONLY);
	l.now = time(NULL);
	if (l.json)
		printf("[");
	if (db_recipients(db, address, 0, list_one, &l, err, sizeof(err)) != 0)
		die(EX_SOFTWARE, "%s", err);
	if (l.json)
		printf("%s]\n", l.n ? "\n" : "");
	else if (l.n == 0)
		printf("no recipient certificates%s%s (import with \"smimectl "
		       "recipient import\")\n",
		       address ? " for " : "", address ? address : "");
	db_close(db);
	config_free(cfg);
	return EX_OK;
}

/* ---- remove ---------------------------------------------------------- */

static int recipient_remove(int argc, char **argv)
{
	struct config *cfg;
	struct db *db;
	char err[1024], addr[320];
	const char *spec;
	int count = 0;

	if (argc != 2 || argv[1][0] == '-' || argv[1][0] == '\0')
		die(EX_USAGE, "usage: recipient remove ADDR|ID|SERIAL|"
		              "FINGERPRINT");
	spec = argv[1];
	if (strchr(spec, '@')) {
		norm_address("recipient remove", spec, addr, sizeof(addr));
		spec = addr;
	}
	cfg = load_config();
	db = open_db_as_user(cfg, DB_READWRITE);
	if (db_begin(db, err, sizeof(err)) != 0 ||
	    db_recipient_remove(db, spec, actor(), &count, err, sizeof(err)) !=
	            0 ||
	    db_commit(db, err, sizeof(err)) != 0) {
		db_rollback(db);
		die(strncmp(err, "database:", 9) == 0 ? EX_TEMPFAIL
		                                      : EX_DATAERR,
		    "nothing removed: %s", err);
	}
	if (count == 0)
		die(1,
		    "no recipient certificate matches '%s' (give an address, "
		    "the id shown by \"smimectl recipient list\", a serial or "
		    "a "
		    "SHA-256 fingerprint)",
		    spec);
	printf("removed %d recipient certificate%s\n", count,
	       count == 1 ? "" : "s");
	printf(RELOAD_HINT);
	db_close(db);
	config_free(cfg);
	return EX_OK;
}

int cmd_recipient(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "import") == 0)
		return recipient_import(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "list") == 0)
		return recipient_list(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "remove") == 0)
		return recipient_remove(argc - 1, argv + 1);
	die(EX_USAGE, "usage: recipient import [--address ADDR] FILE... | "
	              "list [--address ADDR] [--json] | "
	              "remove ADDR|ID|SERIAL|FINGERPRINT");
	return EX_USAGE;
}
