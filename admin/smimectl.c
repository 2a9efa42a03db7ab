/*
 * smimectl -- the sidecar admin tool: database, certificates, mapping,
 * revocation.  A command table, one handler per subcommand.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <openssl/x509.h>

#include "certstore.h"
#include "config.h"
#include "db.h"
#include "util.h"
#include "smimectl.h"

static const char *conf_path = CONFIG_DEFAULT_PATH;

void die(int code, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "smimectl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

struct config *load_config(void)
{
	struct config *cfg;
	char err[8192];

	if (config_load(conf_path, &cfg, err, sizeof(err)) != 0)
		die(EX_CONFIG, "%s", err);
	return cfg;
}

struct db *open_db(struct config *cfg, enum db_open_mode mode)
{
	struct db *db;
	char err[1024];

	if (db_open(cfg->database, mode, &db, err, sizeof(err)) != 0)
		die(mode == DB_CREATE ? EX_CANTCREAT : EX_NOINPUT, "%s", err);
	return db;
}

const char *actor(void)
{
	static char buf[64];
	struct passwd *pw = getpwuid(getuid());
	const char *sudo = getenv("SUDO_USER");

	snprintf(buf, sizeof(buf), "%s", sudo ? sudo : pw ? pw->pw_name : "?");
	return buf;
}

/*
 * From here on run as the milter's user (when started as root and `user`
 * is set), so that every file smimectl creates -- the database and its
 * WAL and shared-memory files, copied keys -- belongs to the daemon that
 * must read and write them.  Inputs named on the command line are read
 * before this, as root.
 */
void become_user(const struct config *cfg)
{
	struct passwd *pw;

	if (cfg->user == NULL || geteuid() != 0)
		return;
	pw = getpwnam(cfg->user);
	if (pw == NULL)
		die(EX_NOUSER, "user %s (from %s): no such user", cfg->user,
		    conf_path);
	if (pw->pw_uid == 0)
		return;
	if (initgroups(pw->pw_name, pw->pw_gid) != 0 ||
	    setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0)
		die(EX_NOPERM, "cannot become %s: %s", cfg->user,
		    strerror(errno));
}

void check_kind(const char *kind)
{
	if (strcmp(kind, "individual") && strcmp(kind, "role") &&
	    strcmp(kind, "system"))
		die(EX_USAGE,
		    "--kind must be individual, role or system, not '%s'",
		    kind);
}

void check_key_type(const char *type)
{
	if (strcmp(type, "rsa2048") && strcmp(type, "rsa3072") &&
	    strcmp(type, "ec-p256"))
		die(EX_USAGE, "--key-type must be rsa2048, rsa3072 or ec-p256");
}

/* ---- init ------------------------------------------------------------ */

static int cmd_init(int argc, char **argv)
{
	struct config *cfg = load_config();
	struct db *db;

	become_user(cfg);
	db = open_db(cfg, DB_CREATE);
	printf("database %s ready (schema version %d)\n", cfg->database,
	       db_version(db));
	db_close(db);
	config_free(cfg);
	return EX_OK;
}

/* ---- import ---------------------------------------------------------- */

/* Copy the open file in to dst (mode 0600) through a temp file and a
 * rename, so a half-written key never exists under its name.  Closes in. */
static int copy_private(int in, const char *dst, char *err, size_t errlen)
{
	char tmp[4200], buf[65536];
	int out;
	ssize_t n;

	snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", dst, (long)getpid());
	out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0) {
		close(in);
		return seterr(err, errlen, "%s: %s", tmp, strerror(errno));
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n) {
			n = -1;
			break;
		}
	close(in);
	OPENSSL_cleanse(buf, sizeof(buf));
	if (n < 0 || fsync(out) != 0 || close(out) != 0) {
		unlink(tmp);
		return seterr(err, errlen, "%s: write failed: %s", tmp,
		              strerror(errno));
	}
	if (rename(tmp, dst) != 0) {
		unlink(tmp);
		return seterr(err, errlen, "%s: %s", dst, strerror(errno));
	}
	return 0;
}

static int cmd_import(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mailbox", required_argument, NULL, 'm' },
		{ "kind", required_argument, NULL, 'k' },
		{ "p12", required_argument, NULL, 'p' },
		{ "passphrase-file", required_argument, NULL, 'P' },
		{ "cert", required_argument, NULL, 'c' },
		{ "key", required_argument, NULL, 'K' },
		{ "owner", required_argument, NULL, 'o' },
		{ "nip", required_argument, NULL, 'n' },
		{ "unit", required_argument, NULL, 'u' },
		{ "contact", required_argument, NULL, 'C' },
		{ "pkcs11-uri", required_argument, NULL, 'U' },
		{ NULL, 0, NULL, 0 },
	};
	const char *mailbox = NULL, *kind = NULL, *p12 = NULL, *pass = NULL,
	           *certf = NULL, *keyf = NULL, *owner = NULL, *nip = NULL,
	           *unit = NULL, *contact = NULL, *uri = NULL;
	struct config *cfg;
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	STACK_OF(X509) *extra = NULL, *chain;
	struct cert_info ci;
	struct db_cert dc;
	struct key_ref ref;
	char err[2048], mbox[320], keypath[4096], passpath[4096];
	struct db *db = NULL;
	struct db_renewal ren;
	int opt, in_key, in_pass;

	memset(&ren, 0, sizeof(ren));
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'm':
			mailbox = optarg;
			break;
		case 'k':
			kind = optarg;
			break;
		case 'p':
			p12 = optarg;
			break;
		case 'P':
			pass = optarg;
			break;
		case 'c':
			certf = optarg;
			break;
		case 'K':
			keyf = optarg;
			break;
		case 'o':
			owner = optarg;
			break;
		case 'n':
			nip = optarg;
			break;
		case 'u':
			unit = optarg;
			break;
		case 'C':
			contact = optarg;
			break;
		case 'U':
			uri = optarg;
			break;
		default:
			return EX_USAGE;
		}
	}
	if (!mailbox || !kind || (uri && (p12 || keyf || pass)) ||
	    (!uri && !p12 == !certf) || (p12 && !pass) ||
	    (certf && !keyf && pass) || optind != argc)
		die(EX_USAGE,
		    "usage: import --mailbox ADDR --kind individual|role|system"
		    " (--p12 FILE --passphrase-file FILE | --cert PEM --key PEM"
		    " [--passphrase-file FILE] | --pkcs11-uri URI [--cert PEM]"
		    " | --cert PEM (after renew or keygen))"
		    " [--owner NAME] [--nip NIP] [--unit UNIT] [--contact "
		    "ADDR]");
	if (contact && strchr(contact, '@') == NULL)
		die(EX_USAGE, "--contact %s is not a mail address", contact);
	check_kind(kind);
	if (addr_from_header(mailbox, mbox, sizeof(mbox), err, sizeof(err)) !=
	    0)
		die(EX_USAGE, "--mailbox %s: %s", mailbox, err);
	cfg = load_config();
	if (!config_signing_domain(cfg, addr_domain(mbox)))
		fprintf(stderr,
		        "smimectl: warning: %s is not in a signing domain of "
		        "%s\n",
		        mbox, conf_path);

	/* read and check everything before writing anything */
	if (uri) {
		/* the key stays on its token: use it as the milter's user */
		become_user(cfg);
		if (certf) {
			STACK_OF(X509) *sk;
			if (cert_read_file(certf, &sk, err, sizeof(err)) != 0)
				die(EX_DATAERR, "refused: %s", err);
			cert = sk_X509_shift(sk);
			extra = sk;
		} else {
			cert = hsm_cert_of_key(cfg, uri);
			extra = sk_X509_new_null();
		}
		key = hsm_key_for_cert(cfg, uri, cert);
	} else if (p12) {
		if (keystore_read_pkcs12(p12, pass, &key, &cert, &extra, err,
		                         sizeof(err)) != 0)
			die(EX_DATAERR, "refused: %s", err);
	} else {
		STACK_OF(X509) *sk;
		ref.backend = KEY_PEM;
		ref.location = keyf;
		ref.secret_file = pass;
		if (cert_read_file(certf, &sk, err, sizeof(err)) != 0)
			die(EX_DATAERR, "refused: %s", err);
		cert = sk_X509_shift(sk);
		extra = sk;
		if (keyf == NULL) {
			/* the certificate of a renewal: its key waits in
			 * key_dir, found by the public key */
			char *h = pubkey_sha256_hex(X509_get0_pubkey(cert));
			int rc;
			become_user(cfg);
			db = open_db(cfg, DB_READWRITE);
			rc = h ? db_renewal_find(db, h, &ren, err, sizeof(err))
			       : -1;
			free(h);
			if (rc < 0)
				die(EX_SOFTWARE, "%s", err);
			if (rc == 0)
				die(EX_DATAERR,
				    "refused: no pending renewal holds the key "
				    "of "
				    "this certificate (give --key, or run "
				    "\"smimectl renew\" first)");
			ref.backend = key_backend_parse(ren.key_backend);
			ref.location = ren.key_location;
			ref.secret_file = ren.secret_file;
		}
		/* one key store for the run: like the keys, it lives until
		 * exit */
		static struct keystore *ks;
		if (ks == NULL && (ks = keystore_new_config(cfg, 1, 1)) == NULL)
			die(EX_OSERR, "out of memory");
		if (keystore_load_key(ks, &ref, cert, &key, NULL, err,
		                      sizeof(err)) != 0)
			die(EX_DATAERR, "refused: %s", err);
	}
	if (cert_info_get(cert, &ci) != 0)
		die(EX_SOFTWARE, "cannot read certificate details");
	if (!cert_has_email(cert, mbox))
		die(EX_DATAERR,
		    "refused: certificate %s (%s) does not carry %s (neither "
		    "subjectAltName rfc822Name nor subject emailAddress)",
		    ci.serial, ci.subject, mbox);
	if (!cert_matches_key(cert, key))
		die(EX_DATAERR,
		    "refused: the private key does not match certificate %s",
		    ci.serial);
	if (ci.not_after < time(NULL)) {
		char t[40];
		die(EX_DATAERR, "refused: certificate %s expired on %s",
		    ci.serial, time_fmt(ci.not_after, t, sizeof(t)));
	}
	if (cert_check_usage(cert, mbox, err, sizeof(err)) != 0)
		die(EX_DATAERR, "refused: %s", err);
	if (ci.not_before > time(NULL)) {
		char t[40];
		fprintf(stderr,
		        "smimectl: note: certificate %s is valid only from "
		        "%s\n",
		        ci.serial, time_fmt(ci.not_before, t, sizeof(t)));
	}
	chain = cert_build_chain(cert, extra, cfg->ca_file);
	if (uri) {
		snprintf(keypath, sizeof(keypath), "%s", uri);
		db = open_db(cfg, DB_READWRITE);
		if (db_cert_exists(db, ci.fingerprint))
			die(EX_DATAERR,
			    "refused: certificate %s is already imported",
			    ci.serial);
	} else if (ren.id > 0) {
		/* the key is already in key_dir */
		snprintf(keypath, sizeof(keypath), "%s", ren.key_location);
		snprintf(passpath, sizeof(passpath), "%s",
		         ren.secret_file ? ren.secret_file : "");
		if (db_cert_exists(db, ci.fingerprint))
			die(EX_DATAERR,
			    "refused: certificate %s is already imported",
			    ci.serial);
	} else {
		/* the key material is opened here, as the caller; what is
		 * written from now on belongs to the milter user */
		in_key = open(p12 ? p12 : keyf, O_RDONLY | O_CLOEXEC);
		in_pass = pass ? open(pass, O_RDONLY | O_CLOEXEC) : -1;
		if (in_key < 0 || (pass && in_pass < 0))
			die(EX_NOINPUT, "cannot open the key material: %s",
			    strerror(errno));
		become_user(cfg);
		db = open_db(cfg, DB_READWRITE);
		if (db_cert_exists(db, ci.fingerprint))
			die(EX_DATAERR,
			    "refused: certificate %s is already imported",
			    ci.serial);
		if (mkdir(cfg->key_dir, 0700) != 0 && errno != EEXIST)
			die(EX_CANTCREAT, "%s: %s", cfg->key_dir,
			    strerror(errno));
		snprintf(keypath, sizeof(keypath), "%s/%.16s.%s", cfg->key_dir,
		         ci.fingerprint, p12 ? "p12" : "key.pem");
		snprintf(passpath, sizeof(passpath), "%s/%.16s.pass",
		         cfg->key_dir, ci.fingerprint);
		if (copy_private(in_key, keypath, err, sizeof(err)) != 0 ||
		    (pass &&
		     copy_private(in_pass, passpath, err, sizeof(err)) != 0))
			die(EX_CANTCREAT, "%s", err);
	}

	db_cert_from_info(&dc, &ci);
	dc.kind = (char *)kind;
	dc.mailbox = mbox;
	dc.key_backend = uri          ? (char *)"pkcs11"
	                 : ren.id > 0 ? ren.key_backend
	                              : (char *)(p12 ? "pkcs12" : "pem");
	dc.key_location = keypath;
	dc.secret_file =
	        (pass || (ren.id > 0 && ren.secret_file)) ? passpath : NULL;
	dc.cert_pem = cert_to_pem(cert);
	dc.chain_pem = cert_stack_to_pem(chain);
	dc.owner = (char *)owner;
	dc.nip = (char *)nip;
	dc.unit = (char *)unit;
	dc.contact = (char *)contact;
	if (db_begin(db, err, sizeof(err)) != 0 ||
	    db_cert_add(db, &dc, err, sizeof(err)) != 0 ||
	    db_map(db, mbox, dc.id, kind, actor(), err, sizeof(err)) != 0 ||
	    (ren.id > 0 &&
	     db_renewal_complete(db, ren.id, dc.id, err, sizeof(err)) != 0) ||
	    db_commit(db, err, sizeof(err)) != 0) {
		db_rollback(db);
		if (ren.id == 0 && !uri) {
			unlink(keypath);
			if (pass)
				unlink(passpath);
		}
		die(EX_TEMPFAIL, "nothing imported: %s", err);
	}
	if (ren.id > 0)
		printf("matched to the key of renewal %lld\n", ren.id);
	{
		char t[40];
		printf("imported certificate %s for %s (%s), valid until %s, "
		       "chain of %d; id %lld\n",
		       ci.serial, mbox, kind,
		       time_fmt(ci.not_after, t, sizeof(t)), sk_X509_num(chain),
		       dc.id);
	}
	printf("run \"smimectl reload\" (or send SIGUSR1) to start using it\n");
	free(dc.cert_pem);
	free(dc.chain_pem);
	db_renewal_clear(&ren);
	cert_info_clear(&ci);
	sk_X509_pop_free(chain, X509_free);
	sk_X509_pop_free(extra, X509_free);
	X509_free(cert);
	EVP_PKEY_free(key);
	db_close(db);
	config_free(cfg);
	return EX_OK;
}

/* ---- list ------------------------------------------------------------ */

void json_str(const char *s)
{
	if (s == NULL) {
		printf("null");
		return;
	}
	putchar('"');
	for (; s && *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

struct list_state {
	int json;
	int n;
	const char *kind, *unit, *status;
};

static int list_row(void *arg, const char *address, const struct db_cert *c)
{
	struct list_state *ls = arg;
	char nb[40], na[40];

	if ((ls->kind && !str_ieq(ls->kind, c->kind)) ||
	    (ls->unit && !str_ieq(ls->unit, c->unit ? c->unit : "")) ||
	    (ls->status && !str_ieq(ls->status, c->status)))
		return 0;
	time_fmt(c->not_before, nb, sizeof(nb));
	time_fmt(c->not_after, na, sizeof(na));
	if (ls->json) {
		printf("%s\n  {\"id\": %lld, \"mailbox\": ", ls->n ? "," : "",
		       c->id);
		json_str(c->mailbox);
		printf(", \"mapped\": %s, \"kind\": ",
		       address ? "true" : "false");
		json_str(c->kind);
		printf(", \"status\": ");
		json_str(c->status);
		printf(", \"serial\": ");
		json_str(c->serial);
		printf(", \"fingerprint\": ");
		json_str(c->fingerprint);
		printf(", \"subject\": ");
		json_str(c->subject);
		printf(", \"issuer\": ");
		json_str(c->issuer);
		printf(", \"not_before\": ");
		json_str(nb);
		printf(", \"not_after\": ");
		json_str(na);
		printf(", \"key_backend\": ");
		json_str(c->key_backend);
		printf(", \"owner\": ");
		json_str(c->owner);
		printf(", \"nip\": ");
		json_str(c->nip);
		printf(", \"unit\": ");
		json_str(c->unit);
		printf(", \"contact\": ");
		json_str(c->contact ? c->contact : c->mailbox);
		printf("}");
	} else {
		if (ls->n == 0)
			printf("%-4s %-32s %-10s %-10s %-20s %-10s %s\n", "ID",
			       "MAILBOX", "KIND", "STATUS", "SERIAL", "EXPIRES",
			       "SUBJECT");
		printf("%-4lld %-32s %-10s %-10s %-20.20s %-10.10s %s\n", c->id,
		       c->mailbox, c->kind, c->status, c->serial, na,
		       c->subject);
	}
	ls->n++;
	return 0;
}

static int cmd_list(int argc, char **argv)
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
	become_user(cfg);
	db = open_db(cfg, DB_READONLY);
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

/* ---- crl import ------------------------------------------------------ */

static X509_CRL *read_crl(const char *path, char *err, size_t errlen)
{
	BIO *bio = BIO_new_file(path, "rb");
	X509_CRL *crl;

	if (bio == NULL) {
		ERR_clear_error();
		seterr(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL);
	if (crl == NULL) {
		ERR_clear_error();
		(void)BIO_reset(bio);
		crl = d2i_X509_CRL_bio(bio, NULL);
	}
	BIO_free(bio);
	ERR_clear_error();
	if (crl == NULL)
		seterr(err, errlen, "%s: not a CRL (PEM or DER)", path);
	return crl;
}

/* Verify crl's signature with an issuer from ca_file; 0 ok, -1 not. */
static int crl_verify(X509_CRL *crl, const char *ca_file, char *err,
                      size_t errlen)
{
	STACK_OF(X509) *cas;
	int ok = 0;

	if (cert_read_file(ca_file, &cas, err, errlen) != 0)
		return -1;
	for (int i = 0; !ok && i < sk_X509_num(cas); i++) {
		X509 *ca = sk_X509_value(cas, i);
		EVP_PKEY *pk = X509_get0_pubkey(ca);
		if (X509_NAME_cmp(X509_get_subject_name(ca),
		                  X509_CRL_get_issuer(crl)) == 0 &&
		    pk && X509_CRL_verify(crl, pk) == 1)
			ok = 1;
	}
	ERR_clear_error();
	sk_X509_pop_free(cas, X509_free);
	if (!ok)
		return seterr(err, errlen,
		              "CRL signature does not verify against any "
		              "issuer in %s",
		              ca_file);
	return 0;
}

/* The reasonCode of a CRL entry by its RFC 5280 name, or "crl" when the
 * entry has none. */
static const char *crl_entry_reason(X509_REVOKED *r)
{
	static const char *const names[] = {
		"unspecified",        "keyCompromise", "cACompromise",
		"affiliationChanged", "superseded",    "cessationOfOperation",
		"certificateHold",    "crl",           "removeFromCRL",
		"privilegeWithdrawn", "aACompromise",
	};
	ASN1_ENUMERATED *e =
	        X509_REVOKED_get_ext_d2i(r, NID_crl_reason, NULL, NULL);
	long code = e ? ASN1_ENUMERATED_get(e) : -1;

	ASN1_ENUMERATED_free(e);
	ERR_clear_error();
	if (code < 0 || code >= (long)(sizeof(names) / sizeof(names[0])))
		return "crl";
	return names[code];
}

static int cmd_crl(int argc, char **argv)
{
	struct config *cfg;
	struct db *db;
	X509_CRL **crls;
	char err[1024];
	int total = 0;

	if (argc < 3 || strcmp(argv[1], "import") != 0)
		die(EX_USAGE, "usage: crl import FILE...");
	cfg = load_config();
	/* read and verify every CRL before the database is touched */
	crls = calloc((size_t)argc, sizeof(*crls));
	if (crls == NULL)
		die(EX_OSERR, "out of memory");
	for (int f = 2; f < argc; f++) {
		crls[f] = read_crl(argv[f], err, sizeof(err));
		if (crls[f] == NULL)
			die(EX_DATAERR, "%s", err);
		if (cfg->ca_file) {
			if (crl_verify(crls[f], cfg->ca_file, err,
			               sizeof(err)) != 0)
				die(EX_DATAERR, "%s: refused: %s", argv[f],
				    err);
		} else
			fprintf(stderr,
			        "smimectl: warning: no ca_file configured, the "
			        "signature of %s is not verified\n",
			        argv[f]);
	}
	become_user(cfg);
	db = open_db(cfg, DB_READWRITE);
	for (int f = 2; f < argc; f++) {
		X509_CRL *crl = crls[f];
		STACK_OF(X509_REVOKED) *revs;
		char *issuer;
		int changed = 0, n;
		issuer = cert_name_text(X509_CRL_get_issuer(crl));
		revs = X509_CRL_get_REVOKED(crl);
		n = sk_X509_REVOKED_num(revs);
		if (db_begin(db, err, sizeof(err)) != 0)
			die(EX_TEMPFAIL, "%s", err);
		for (int i = 0; i < n; i++) {
			X509_REVOKED *r = sk_X509_REVOKED_value(revs, i);
			BIGNUM *bn = ASN1_INTEGER_to_BN(
			        X509_REVOKED_get0_serialNumber(r), NULL);
			char *hex = bn ? BN_bn2hex(bn) : NULL;
			time_t when = asn1_time_to_time(
			        X509_REVOKED_get0_revocationDate(r));
			int count = 0;
			if (hex == NULL) {
				db_rollback(db);
				die(EX_SOFTWARE, "%s: cannot read a serial",
				    argv[f]);
			}
			/* every entry is kept, so that a recipient
			 * certificate imported later is refused too */
			if (db_serial_revoke_add(db, issuer, hex,
			                         crl_entry_reason(r), when, err,
			                         sizeof(err)) != 0 ||
			    db_revoke(db, issuer, hex, "crl", when, actor(),
			              &count, err, sizeof(err)) != 0) {
				db_rollback(db);
				die(EX_TEMPFAIL, "nothing changed: %s", err);
			}
			changed += count;
			OPENSSL_free(hex);
			BN_free(bn);
		}
		if (db_crl_add(db, issuer,
		               asn1_time_to_time(X509_CRL_get0_lastUpdate(crl)),
		               asn1_time_to_time(X509_CRL_get0_nextUpdate(crl)),
		               n, err, sizeof(err)) != 0 ||
		    db_commit(db, err, sizeof(err)) != 0) {
			db_rollback(db);
			die(EX_TEMPFAIL, "nothing changed: %s", err);
		}
		printf("%s: %d serial%s listed, %d certificate%s marked "
		       "revoked\n",
		       argv[f], n, n == 1 ? "" : "s", changed,
		       changed == 1 ? "" : "s");
		total += changed;
		free(issuer);
		X509_CRL_free(crl);
	}
	free(crls);
	if (total > 0)
		printf("run \"smimectl reload\" (or send SIGUSR1) so the "
		       "milter "
		       "stops using them\n");
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

static int cmd_map(int argc, char **argv)
{
	struct config *cfg;
	struct db *db;
	struct db_cert c;
	STACK_OF(X509) *sk;
	char err[1024], mbox[320];

	if (argc != 3)
		die(EX_USAGE, "usage: map ADDR CERT");
	if (addr_from_header(argv[1], mbox, sizeof(mbox), err, sizeof(err)))
		die(EX_USAGE, "%s: %s", argv[1], err);
	cfg = load_config();
	become_user(cfg);
	db = open_db(cfg, DB_READWRITE);
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

static int cmd_unmap(int argc, char **argv)
{
	struct config *cfg;
	struct db *db;
	char err[1024], mbox[320];
	int rc;

	if (argc != 2)
		die(EX_USAGE, "usage: unmap ADDR");
	if (addr_from_header(argv[1], mbox, sizeof(mbox), err, sizeof(err)))
		die(EX_USAGE, "%s: %s", argv[1], err);
	cfg = load_config();
	become_user(cfg);
	db = open_db(cfg, DB_READWRITE);
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

static int cmd_revoke(int argc, char **argv)
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
	become_user(cfg);
	db = open_db(cfg, DB_READWRITE);
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

/* ---- renew ----------------------------------------------------------- */

struct renew_find {
	const char *address;
	struct db_cert c;
	int found;
};

static int renew_mapping(void *arg, const char *address,
                         const struct db_cert *c)
{
	struct renew_find *rf = arg;

	if (strcmp(address, rf->address) != 0)
		return 0;
	/* keep a copy: the row is freed after the callback */
	rf->c.id = c->id;
	rf->c.kind = xstrdup(c->kind);
	rf->c.serial = xstrdup(c->serial);
	rf->c.cert_pem = xstrdup(c->cert_pem);
	rf->c.key_backend = xstrdup(c->key_backend);
	rf->c.key_location = xstrdup(c->key_location);
	rf->found = 1;
	return 1;
}

/* A PKCS#10 request for key with subject and (if not NULL) a copy of the
 * subjectAltName extension san; key usage fits S/MIME. */
X509_REQ *make_csr(const X509_NAME *subject, const X509_EXTENSION *san,
                   EVP_PKEY *key, int ec)
{
	X509_REQ *req = X509_REQ_new();
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	X509_EXTENSION *ku, *eku;

	if (req == NULL || exts == NULL || !X509_REQ_set_version(req, 0) ||
	    !X509_REQ_set_subject_name(req, subject) ||
	    !X509_REQ_set_pubkey(req, key))
		goto fail;
	if (san)
		sk_X509_EXTENSION_push(exts, X509_EXTENSION_dup(san));
	ku = X509V3_EXT_conf_nid(NULL, NULL, NID_key_usage,
	                         ec ? "critical,digitalSignature,keyAgreement"
	                            : "critical,digitalSignature,"
	                              "keyEncipherment");
	eku = X509V3_EXT_conf_nid(NULL, NULL, NID_ext_key_usage,
	                          "emailProtection");
	if (ku == NULL || eku == NULL)
		goto fail;
	sk_X509_EXTENSION_push(exts, ku);
	sk_X509_EXTENSION_push(exts, eku);
	if (!X509_REQ_add_extensions(req, exts) ||
	    !X509_REQ_sign(req, key, EVP_sha256()))
		goto fail;
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	return req;
fail:
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(req);
	return NULL;
}

FILE *open_csr(const char *outdir, const char *mbox, char *path, size_t pathlen)
{
	FILE *f;

	snprintf(path, pathlen, "%s/%s.csr.pem", outdir, mbox);
	f = fopen(path, "w");
	if (f == NULL)
		die(EX_CANTCREAT, "%s: %s", path, strerror(errno));
	return f;
}

char *write_csr(FILE *f, X509_REQ *req, const char *path)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *pem;
	long len;

	if (bio == NULL || !PEM_write_bio_X509_REQ(bio, req))
		die(EX_SOFTWARE, "cannot encode the certificate request");
	len = BIO_get_mem_data(bio, &data);
	pem = strndup(data, (size_t)len);
	BIO_free(bio);
	if (pem == NULL || fputs(pem, f) == EOF || fclose(f) != 0)
		die(EX_CANTCREAT, "%s: %s", path, strerror(errno));
	return pem;
}

static int cmd_renew(int argc, char **argv)
{
	const char *addr = NULL, *type = "rsa2048", *outdir = ".";
	struct config *cfg;
	struct db *db;
	struct renew_find rf;
	struct db_renewal ren;
	STACK_OF(X509) *sk;
	EVP_PKEY *key;
	X509_REQ *req;
	PKCS12 *p12;
	BIO *bio;
	const X509_EXTENSION *san;
	char err[1024], mbox[320], csrpath[4096], keypath[4096], passpath[4096];
	char pass[65], *csr_pem, *newuri = NULL;
	unsigned char rnd[32];
	FILE *f;
	int fd, ec;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--key-type") == 0 && i + 1 < argc)
			type = argv[++i];
		else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
			outdir = argv[++i];
		else if (addr == NULL && argv[i][0] != '-')
			addr = argv[i];
		else
			addr = NULL, i = argc;
	}
	if (addr == NULL)
		die(EX_USAGE, "usage: renew ADDR [--key-type rsa2048|rsa3072|"
		              "ec-p256] [--out DIR]");
	check_key_type(type);
	if (addr_from_header(addr, mbox, sizeof(mbox), err, sizeof(err)) != 0)
		die(EX_USAGE, "%s: %s", addr, err);
	cfg = load_config();
	memset(&rf, 0, sizeof(rf));
	rf.address = mbox;
	db = open_db(cfg, DB_READONLY);
	if (db_mappings(db, renew_mapping, &rf, err, sizeof(err)) != 0)
		die(EX_SOFTWARE, "%s", err);
	db_close(db);
	if (!rf.found)
		die(EX_NOINPUT, "%s has no certificate to renew (import one)",
		    mbox);
	sk = cert_stack_from_pem(rf.c.cert_pem);
	if (sk_X509_num(sk) == 0)
		die(EX_SOFTWARE, "stored certificate of %s does not parse",
		    mbox);

	/* the new key and the request */
	ec = strcmp(type, "ec-p256") == 0;
	san = X509_get_ext(sk_X509_value(sk, 0),
	                   X509_get_ext_by_NID(sk_X509_value(sk, 0),
	                                       NID_subject_alt_name, -1));
	if (str_ieq(rf.c.key_backend, "pkcs11")) {
		/* the new key is born on the token of the current one */
		char label[400];
		f = open_csr(outdir, mbox, csrpath, sizeof(csrpath));
		become_user(cfg);
		snprintf(label, sizeof(label), "%s renewal %ld", mbox,
		         (long)time(NULL));
		key = hsm_keygen(cfg, rf.c.key_location, label, type, &newuri,
		                 &ren.pubkey_sha256);
		req = make_csr(X509_get_subject_name(sk_X509_value(sk, 0)), san,
		               key, ec);
		if (req == NULL)
			die(EX_SOFTWARE,
			    "cannot build the certificate request");
		csr_pem = write_csr(f, req, csrpath);
		ren.key_backend = "pkcs11";
		ren.key_location = newuri;
		ren.secret_file = NULL;
		snprintf(keypath, sizeof(keypath), "%s", newuri);
		goto record;
	}
	key = ec ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")
	         : EVP_PKEY_Q_keygen(NULL, NULL, "RSA",
	                             (size_t)(strcmp(type, "rsa3072") ? 2048
	                                                              : 3072));
	if (key == NULL)
		die(EX_SOFTWARE, "key generation failed");
	req = make_csr(X509_get_subject_name(sk_X509_value(sk, 0)), san, key,
	               ec);
	if (req == NULL)
		die(EX_SOFTWARE, "cannot build the certificate request");
	/* the CSR goes where the caller wants it, written as the caller */
	f = open_csr(outdir, mbox, csrpath, sizeof(csrpath));
	csr_pem = write_csr(f, req, csrpath);

	/* the key waits in key_dir, in a PKCS#12 with a random passphrase */
	become_user(cfg);
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		die(EX_SOFTWARE, "no randomness");
	for (size_t i = 0; i < sizeof(rnd); i++)
		sprintf(pass + 2 * i, "%02x", rnd[i]);
	if (mkdir(cfg->key_dir, 0700) != 0 && errno != EEXIST)
		die(EX_CANTCREAT, "%s: %s", cfg->key_dir, strerror(errno));
	{
		char *h = pubkey_sha256_hex(key);
		snprintf(keypath, sizeof(keypath), "%s/renew-%.16s.p12",
		         cfg->key_dir, h ? h : "x");
		snprintf(passpath, sizeof(passpath), "%s/renew-%.16s.pass",
		         cfg->key_dir, h ? h : "x");
		ren.pubkey_sha256 = h;
	}
	p12 = PKCS12_create(pass, "smimectl renewal key", key, NULL, NULL, 0, 0,
	                    0, 0, 0);
	if (p12 == NULL)
		die(EX_SOFTWARE, "cannot build the PKCS#12 for the new key");
	fd = open(passpath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, pass, strlen(pass)) != (ssize_t)strlen(pass) ||
	    close(fd) != 0)
		die(EX_CANTCREAT, "%s: %s", passpath, strerror(errno));
	OPENSSL_cleanse(pass, sizeof(pass));
	fd = open(keypath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	bio = fd >= 0 ? BIO_new_fd(fd, BIO_CLOSE) : NULL;
	if (bio == NULL || i2d_PKCS12_bio(bio, p12) != 1 || BIO_flush(bio) != 1)
		die(EX_CANTCREAT, "%s: cannot write", keypath);
	BIO_free(bio);
	PKCS12_free(p12);

	ren.key_backend = "pkcs12";
	ren.key_location = keypath;
	ren.secret_file = passpath;
record:
	ren.mailbox = mbox;
	ren.kind = rf.c.kind;
	db = open_db(cfg, DB_READWRITE);
	if (db_begin(db, err, sizeof(err)) != 0 ||
	    db_renewal_add(db, &ren, csr_pem, rf.c.id, actor(), err,
	                   sizeof(err)) != 0 ||
	    db_commit(db, err, sizeof(err)) != 0) {
		db_rollback(db);
		if (newuri == NULL) {
			unlink(keypath);
			unlink(passpath);
		}
		die(EX_TEMPFAIL, "nothing recorded: %s%s", err,
		    newuri ? " (the new key stays on the token)" : "");
	}
	printf("renewal %lld for %s (%s): new %s key in %s\n"
	       "certificate request: %s\n"
	       "send it to the CA; then: smimectl import --mailbox %s --kind "
	       "%s "
	       "--cert ISSUED.pem\n",
	       ren.id, mbox, rf.c.serial, type, keypath, csrpath, mbox,
	       rf.c.kind);
	free(ren.pubkey_sha256);
	free(newuri);
	free(csr_pem);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
	sk_X509_pop_free(sk, X509_free);
	db_cert_clear(&rf.c);
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

static int cmd_show(int argc, char **argv)
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
	become_user(cfg);
	db = open_db(cfg, DB_READONLY);
	if (strchr(argv[1], '@')) {
		if (addr_from_header(argv[1], mbox, sizeof(mbox), err,
		                     sizeof(err)) != 0)
			die(EX_USAGE, "%s: %s", argv[1], err);
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

/* ---- expiring -------------------------------------------------------- */

/* Monitoring-plugin exit codes (Icinga/Nagios). */
enum { MON_OK = 0, MON_WARNING = 1, MON_CRITICAL = 2, MON_UNKNOWN = 3 };

struct expiring_state {
	time_t now, warn_until, crit_until;
	int json, n, worst;
};

static int expiring_row(void *arg, const char *address, const struct db_cert *c)
{
	struct expiring_state *es = arg;
	char na[40];
	long days;
	int level;

	if (!str_ieq(c->status, "active") || c->not_after > es->warn_until)
		return 0;
	level = (c->not_after < es->now || c->not_after <= es->crit_until)
	                ? MON_CRITICAL
	                : MON_WARNING;
	if (level > es->worst)
		es->worst = level;
	days = (long)((c->not_after - es->now) / 86400);
	time_fmt(c->not_after, na, sizeof(na));
	if (es->json) {
		printf("%s\n  {\"mailbox\": ", es->n ? "," : "");
		json_str(address);
		printf(", \"id\": %lld, \"serial\": ", c->id);
		json_str(c->serial);
		printf(", \"not_after\": ");
		json_str(na);
		printf(", \"days_left\": %ld, \"expired\": %s, \"level\": "
		       "\"%s\","
		       " \"owner\": ",
		       days, c->not_after < es->now ? "true" : "false",
		       level == MON_CRITICAL ? "critical" : "warning");
		json_str(c->owner);
		printf(", \"unit\": ");
		json_str(c->unit);
		printf(", \"contact\": ");
		json_str(c->contact ? c->contact : address);
		printf("}");
	} else if (c->not_after < es->now)
		printf("CRITICAL: %s certificate %s EXPIRED on %s (still "
		       "mapped)\n",
		       address, c->serial, na);
	else
		printf("%s: %s certificate %s expires %s (%ld day%s)\n",
		       level == MON_CRITICAL ? "CRITICAL" : "WARNING", address,
		       c->serial, na, days, days == 1 ? "" : "s");
	es->n++;
	return 0;
}

struct crl_state {
	time_t now;
	int stale;
	int json;
};

static int crl_row(void *arg, const char *issuer, time_t next_update)
{
	struct crl_state *cs = arg;
	char t[40];

	if (next_update == 0 || next_update >= cs->now)
		return 0;
	cs->stale++;
	if (!cs->json)
		printf("WARNING: CRL of %s is stale (nextUpdate %s): import a "
		       "fresh one\n",
		       issuer, time_fmt(next_update, t, sizeof(t)));
	return 0;
}

static int cmd_expiring(int argc, char **argv)
{
	struct expiring_state es;
	struct crl_state cs;
	struct config *cfg;
	struct db *db;
	char err[1024], *end;
	long days = -1;

	memset(&es, 0, sizeof(es));
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			es.json = 1;
		else if (strcmp(argv[i], "--days") == 0 && i + 1 < argc) {
			days = strtol(argv[++i], &end, 10);
			if (*end || days < 0 || days > 3650)
				days = -2;
		} else
			days = -2;
	}
	if (days < 0) {
		fprintf(stderr, "usage: expiring --days N [--json]\n");
		return MON_UNKNOWN;
	}
	cfg = load_config();
	become_user(cfg);
	if (db_open(cfg->database, DB_READONLY, &db, err, sizeof(err)) != 0) {
		printf("UNKNOWN: %s\n", err);
		return MON_UNKNOWN;
	}
	es.now = time(NULL);
	es.warn_until = es.now + days * 86400;
	es.crit_until = es.now + cfg->alert_critical_days * 86400;
	memset(&cs, 0, sizeof(cs));
	cs.now = es.now;
	cs.json = es.json;
	if (es.json)
		printf("{\"certificates\": [");
	if (db_mappings(db, expiring_row, &es, err, sizeof(err)) != 0 ||
	    db_crls(db, crl_row, &cs, err, sizeof(err)) != 0) {
		printf("UNKNOWN: %s\n", err);
		return MON_UNKNOWN;
	}
	if (cs.stale && es.worst < MON_WARNING)
		es.worst = MON_WARNING;
	if (es.json)
		printf("%s], \"stale_crls\": %d, \"status\": \"%s\"}\n",
		       es.n ? "\n" : "", cs.stale,
		       es.worst == MON_CRITICAL  ? "critical"
		       : es.worst == MON_WARNING ? "warning"
		                                 : "ok");
	else if (es.worst == MON_OK)
		printf("OK: no mapped certificate expires within %ld days\n",
		       days);
	db_close(db);
	config_free(cfg);
	return es.worst;
}

/* ---- notify ---------------------------------------------------------- */

/* The alert as shipped (Indonesian); alert_template names a file that
 * replaces it.  Placeholders: {mailbox} {owner} {unit} {serial} {expiry}
 * {days} {contact}.  The first lines up to a blank line are headers. */
static const char default_template[] =
        "Subject: [Sertifikat Elektronik] Sertifikat {mailbox} berakhir dalam "
        "{days} hari\n"
        "\n"
        "Yth. {owner},\n"
        "\n"
        "Sertifikat elektronik untuk kotak surat {mailbox} ({unit})\n"
        "akan berakhir masa berlakunya pada {expiry}, yaitu dalam {days} "
        "hari.\n"
        "Nomor seri sertifikat: {serial}.\n"
        "\n"
        "Sesuai Peraturan Wali Kota Banjar Nomor 2 Tahun 2018 Pasal 14,\n"
        "pembaruan sertifikat menjadi kewajiban pemilik sertifikat. Silakan\n"
        "ajukan permohonan pembaruan kepada Operator Pendaftaran (OP)\n"
        "sebelum tanggal tersebut, agar surat elektronik dinas dari kotak "
        "surat\n"
        "ini tetap dapat ditandatangani secara elektronik.\n"
        "\n"
        "Pesan ini dikirim otomatis oleh smimectl.\n";

struct notify_state {
	struct config *cfg;
	struct db *db;
	char *template;
	time_t now;
	int dry_run;
	int sent, failed, skipped;
};

/* Append s to the growing buffer *out. */
static void sb_add(char **out, size_t *len, const char *s, size_t n)
{
	char *p = realloc(*out, *len + n + 1);

	if (p == NULL)
		die(EX_OSERR, "out of memory");
	memcpy(p + *len, s, n);
	*len += n;
	p[*len] = '\0';
	*out = p;
}

static char *expand(const char *tpl, const char *const *keys,
                    const char *const *vals, size_t n)
{
	char *out = NULL;
	size_t len = 0;
	const char *p = tpl;

	sb_add(&out, &len, "", 0);
	while (*p) {
		size_t i;
		if (*p == '{') {
			for (i = 0; i < n; i++) {
				size_t kl = strlen(keys[i]);
				if (strncmp(p + 1, keys[i], kl) == 0 &&
				    p[1 + kl] == '}') {
					sb_add(&out, &len, vals[i],
					       strlen(vals[i]));
					p += kl + 2;
					break;
				}
			}
			if (i < n)
				continue;
		}
		sb_add(&out, &len, p, 1);
		p++;
	}
	return out;
}

/* Hand one message to the local MTA; 0 when it took it. */
static int send_mail(const char *sendmail, const char *msg)
{
	int fds[2], status;
	pid_t pid;
	size_t len = strlen(msg), off = 0;

	if (pipe(fds) != 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		dup2(fds[0], 0);
		close(fds[0]);
		close(fds[1]);
		execl(sendmail, sendmail, "-oi", "-t", (char *)NULL);
		_exit(EX_UNAVAILABLE);
	}
	close(fds[0]);
	signal(SIGPIPE, SIG_IGN);
	while (off < len) {
		ssize_t w = write(fds[1], msg + off, len - off);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	close(fds[1]);
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return off == len && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0
	                                                                   : -1;
}

static int notify_row(void *arg, const char *address, const struct db_cert *c)
{
	struct notify_state *ns = arg;
	const struct config *cfg = ns->cfg;
	long days = (long)((c->not_after - ns->now) / 86400);
	int threshold = -1, rc;
	char err[512], expiry[40], dbuf[24], date[64], from[320];
	const char *contact = c->contact ? c->contact : address;
	char *body, *msg = NULL;
	size_t len = 0;
	struct tm tm;

	if (!str_ieq(c->status, "active"))
		return 0;
	if (c->not_after < ns->now)
		days = 0; /* expired while still mapped: the last alert */
	/* the most urgent threshold crossed */
	for (size_t i = 0; i < cfg->nalert_days; i++)
		if (days <= cfg->alert_days[i])
			threshold = (int)cfg->alert_days[i];
	if (threshold < 0)
		return 0;
	rc = db_alert_sent(ns->db, c->id, threshold, err, sizeof(err));
	if (rc < 0)
		die(EX_TEMPFAIL, "%s", err);
	if (rc == 1) {
		ns->skipped++;
		return 0;
	}
	time_fmt(c->not_after, expiry, sizeof(expiry));
	snprintf(dbuf, sizeof(dbuf), "%ld", days);
	{
		const char *keys[] = { "mailbox", "owner", "unit",   "serial",
			               "expiry",  "days",  "contact" };
		const char *vals[] = { address,
			               c->owner ? c->owner : address,
			               c->unit ? c->unit : "-",
			               c->serial,
			               expiry,
			               dbuf,
			               contact };
		body = expand(ns->template, keys, vals, 7);
	}
	snprintf(from, sizeof(from), "%s",
	         cfg->alert_from ? cfg->alert_from : "postmaster@");
	if (cfg->alert_from == NULL)
		snprintf(from, sizeof(from), "postmaster@%s", cfg->domains[0]);
	gmtime_r(&ns->now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	sb_add(&msg, &len, "", 0);
	{
		char h[1024];
		snprintf(h, sizeof(h),
		         "From: %s\nTo: %s\n%s%s%sDate: %s\n"
		         "Message-ID: <smimectl.%s.%d.%ld@%s>\n"
		         "MIME-Version: 1.0\n"
		         "Content-Type: text/plain; charset=utf-8\n"
		         "Content-Transfer-Encoding: 8bit\n",
		         from, contact, cfg->op_admin ? "Cc: " : "",
		         cfg->op_admin ? cfg->op_admin : "",
		         cfg->op_admin ? "\n" : "", date, c->serial, threshold,
		         (long)ns->now, cfg->domains[0]);
		sb_add(&msg, &len, h, strlen(h));
	}
	sb_add(&msg, &len, body, strlen(body));
	free(body);
	if (ns->dry_run) {
		printf("---- alert for %s (threshold %d days) ----\n%s\n",
		       address, threshold, msg);
		ns->sent++;
	} else if (send_mail(cfg->sendmail_path, msg) != 0) {
		fprintf(stderr, "smimectl: %s did not take the alert for %s\n",
		        cfg->sendmail_path, address);
		ns->failed++;
	} else {
		/* every threshold crossed counts as sent: one mail, not a burst */
		for (size_t i = 0; i < cfg->nalert_days; i++)
			if (days <= cfg->alert_days[i] &&
			    db_alert_record(ns->db, c->id,
			                    (int)cfg->alert_days[i], err,
			                    sizeof(err)) != 0)
				die(EX_TEMPFAIL,
				    "alert sent but not recorded: %s", err);
		printf("alert sent to %s%s%s for %s (expires %s, threshold %d "
		       "days)\n",
		       contact, cfg->op_admin ? ", copy to " : "",
		       cfg->op_admin ? cfg->op_admin : "", address, expiry,
		       threshold);
		ns->sent++;
	}
	free(msg);
	return 0;
}

static int cmd_notify(int argc, char **argv)
{
	struct notify_state ns;
	char err[1024];

	memset(&ns, 0, sizeof(ns));
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dry-run") == 0)
			ns.dry_run = 1;
		else
			die(EX_USAGE, "usage: notify [--dry-run]");
	}
	ns.cfg = load_config();
	if (ns.cfg->alert_template) {
		FILE *f = fopen(ns.cfg->alert_template, "r");
		size_t len = 0;
		char buf[4096];
		size_t n;
		if (f == NULL)
			die(EX_NOINPUT, "alert_template %s: %s",
			    ns.cfg->alert_template, strerror(errno));
		ns.template = NULL;
		sb_add(&ns.template, &len, "", 0);
		while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
			sb_add(&ns.template, &len, buf, n);
		fclose(f);
	} else
		ns.template = strdup(default_template);
	become_user(ns.cfg);
	ns.db = open_db(ns.cfg, DB_READWRITE);
	ns.now = time(NULL);
	if (db_mappings(ns.db, notify_row, &ns, err, sizeof(err)) != 0)
		die(EX_TEMPFAIL, "%s", err);
	printf("%d alert%s %s, %d already sent before, %d failed\n", ns.sent,
	       ns.sent == 1 ? "" : "s", ns.dry_run ? "shown (dry run)" : "sent",
	       ns.skipped, ns.failed);
	free(ns.template);
	db_close(ns.db);
	config_free(ns.cfg);
	return ns.failed ? EX_TEMPFAIL : EX_OK;
}

/* ---- reload ---------------------------------------------------------- */

static int cmd_reload(int argc, char **argv)
{
	struct config *cfg = load_config();
	FILE *f;
	long pid = 0;

	if (cfg->pidfile == NULL)
		die(EX_CONFIG,
		    "%s sets no pidfile; send SIGUSR1 to the milter "
		    "yourself",
		    conf_path);
	f = fopen(cfg->pidfile, "r");
	if (f == NULL || fscanf(f, "%ld", &pid) != 1 || pid <= 1)
		die(EX_UNAVAILABLE, "%s: no running milter (%s)", cfg->pidfile,
		    f ? "bad pidfile" : strerror(errno));
	fclose(f);
	if (kill((pid_t)pid, SIGUSR1) != 0)
		die(EX_UNAVAILABLE, "cannot signal pid %ld: %s", pid,
		    strerror(errno));
	printf("asked smime-milter (pid %ld) to reload\n", pid);
	config_free(cfg);
	return EX_OK;
}

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
	{ "crl", cmd_crl, "import FILE...   (PEM or DER)" },
	{ "recipient", cmd_recipient,
	  "import|list|remove ...   (certificates to encrypt to: import "
	  "[--address ADDR] FILE..., list [--address ADDR] [--json], remove "
	  "ADDR|ID|SERIAL|FINGERPRINT)" },
	{ "audit", cmd_audit,
	  "verify [--anchor ID:HASH] [--json]   (the audit log's hash "
	  "chain; exit 1 at the first broken row)" },
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
			conf_path = argv[i + 1];
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
