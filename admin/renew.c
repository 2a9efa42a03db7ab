/*
 * renew -- smimectl renew: a new key and a certificate request for a
 * mapped mailbox, the key kept waiting (in key_dir or on the token of the
 * current key) until "smimectl import --cert" brings the certificate.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/pkcs12.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "certstore.h"
#include "db.h"
#include "util.h"
#include "smimectl.h"

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

/* One renewal: the mailbox, its current certificate, the new key and the
 * files written for it. */
struct renew {
	const char *type, *outdir;
	int decrypt; /* --usage sign,decrypt (the default) */
	struct config *cfg;
	struct renew_find rf;   /* the current certificate's row */
	STACK_OF(X509) *sk;     /* the current certificate */
	struct db_renewal ren;  /* what is recorded */
	EVP_PKEY *key;          /* the new key */
	X509_REQ *req;          /* its request */
	char *csr_pem, *newuri; /* newuri: the new key is on a token */
	char mbox[320], csrpath[4096], keypath[4096], passpath[4096];
};

/* The certificate mapped to r->mbox now, or die. */
static void renew_find_current(struct renew *r)
{
	struct db *db;
	char err[1024];

	r->rf.address = r->mbox;
	db = open_db(r->cfg, DB_READONLY);
	if (db_mappings(db, renew_mapping, &r->rf, err, sizeof(err)) != 0)
		die(EX_SOFTWARE, "%s", err);
	db_close(db);
	if (!r->rf.found)
		die(EX_NOINPUT, "%s has no certificate to renew (import one)",
		    r->mbox);
	r->sk = cert_stack_from_pem(r->rf.c.cert_pem);
	if (sk_X509_num(r->sk) == 0)
		die(EX_SOFTWARE, "stored certificate of %s does not parse",
		    r->mbox);
}

/* The request for the new key, with the subject and subjectAltName of the
 * current certificate. */
static void renew_request(struct renew *r)
{
	X509 *cur = sk_X509_value(r->sk, 0);
	const X509_EXTENSION *san =
	        X509_get_ext(cur, X509_get_ext_by_NID(cur, NID_subject_alt_name,
	                                              -1));

	r->req = csr_make(X509_get_subject_name(cur), san, r->key,
	                  strcmp(r->type, "ec-p256") == 0, r->decrypt);
	if (r->req == NULL)
		die(EX_SOFTWARE, "cannot build the certificate request");
}

/* The new key is born on the token of the current one. */
static void renew_on_token(struct renew *r)
{
	char label[400];
	FILE *f = csr_open(r->outdir, r->mbox, r->csrpath, sizeof(r->csrpath));

	become_user(r->cfg);
	snprintf(label, sizeof(label), "%s renewal %ld", r->mbox,
	         (long)time(NULL));
	r->key = hsm_keygen(r->cfg, r->rf.c.key_location, label, r->type,
	                    r->decrypt, &r->newuri, &r->ren.pubkey_sha256);
	renew_request(r);
	r->csr_pem = csr_write(f, r->req, r->csrpath);
	r->ren.key_backend = "pkcs11";
	r->ren.key_location = r->newuri;
	r->ren.secret_file = NULL;
	snprintf(r->keypath, sizeof(r->keypath), "%s", r->newuri);
}

/* The new key into key_dir as r->keypath, a PKCS#12 with a random
 * passphrase in r->passpath, both written as the milter's user. */
static void renew_write_p12(struct renew *r)
{
	const struct config *cfg = r->cfg;
	char pass[65], *h;
	unsigned char rnd[32];
	PKCS12 *p12;
	BIO *bio;
	int fd;

	become_user(cfg);
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		die(EX_SOFTWARE, "no randomness");
	for (size_t i = 0; i < sizeof(rnd); i++)
		sprintf(pass + 2 * i, "%02x", rnd[i]);
	key_dir_create(cfg);
	h = pubkey_sha256_hex(r->key);
	snprintf(r->keypath, sizeof(r->keypath), "%s/renew-%.16s.p12",
	         cfg->key_dir, h ? h : "x");
	snprintf(r->passpath, sizeof(r->passpath), "%s/renew-%.16s.pass",
	         cfg->key_dir, h ? h : "x");
	r->ren.pubkey_sha256 = h;
	p12 = PKCS12_create(pass, "smimectl renewal key", r->key, NULL, NULL, 0,
	                    0, 0, 0, 0);
	if (p12 == NULL)
		die(EX_SOFTWARE, "cannot build the PKCS#12 for the new key");
	fd = open(r->passpath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, pass, strlen(pass)) != (ssize_t)strlen(pass) ||
	    close(fd) != 0)
		die(EX_CANTCREAT, "%s: %s", r->passpath, strerror(errno));
	OPENSSL_cleanse(pass, sizeof(pass));
	fd = open(r->keypath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	bio = fd >= 0 ? BIO_new_fd(fd, BIO_CLOSE) : NULL;
	if (bio == NULL || i2d_PKCS12_bio(bio, p12) != 1 || BIO_flush(bio) != 1)
		die(EX_CANTCREAT, "%s: cannot write", r->keypath);
	BIO_free(bio);
	PKCS12_free(p12);
	r->ren.key_backend = "pkcs12";
	r->ren.key_location = r->keypath;
	r->ren.secret_file = r->passpath;
}

/* A new software key: the request written as the caller, where the caller
 * wants it; the key waits in key_dir. */
static void renew_in_key_dir(struct renew *r)
{
	FILE *f;

	r->key = strcmp(r->type, "ec-p256") == 0
	                 ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")
	                 : EVP_PKEY_Q_keygen(NULL, NULL, "RSA",
	                                     (size_t)(strcmp(r->type, "rsa3072")
	                                                      ? 2048
	                                                      : 3072));
	if (r->key == NULL)
		die(EX_SOFTWARE, "key generation failed");
	renew_request(r);
	/* the CSR goes where the caller wants it, written as the caller */
	f = csr_open(r->outdir, r->mbox, r->csrpath, sizeof(r->csrpath));
	r->csr_pem = csr_write(f, r->req, r->csrpath);
	renew_write_p12(r);
}

/* The pending renewal recorded; on failure the new key files are removed
 * (a token key stays on its token). */
static void renew_record(struct renew *r, struct db *db)
{
	char err[1024];

	r->ren.mailbox = r->mbox;
	r->ren.kind = r->rf.c.kind;
	if (db_begin(db, err, sizeof(err)) != 0 ||
	    db_renewal_add(db, &r->ren, r->csr_pem, r->rf.c.id, actor(), err,
	                   sizeof(err)) != 0 ||
	    db_commit(db, err, sizeof(err)) != 0) {
		db_rollback(db);
		if (r->newuri == NULL) {
			unlink(r->keypath);
			unlink(r->passpath);
		}
		die(EX_TEMPFAIL, "nothing recorded: %s%s", err,
		    r->newuri ? " (the new key stays on the token)" : "");
	}
}

int cmd_renew(int argc, char **argv)
{
	const char *addr = NULL, *usage = NULL;
	struct renew r;
	struct db *db;

	memset(&r, 0, sizeof(r));
	r.type = "rsa2048";
	r.outdir = ".";
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--key-type") == 0 && i + 1 < argc)
			r.type = argv[++i];
		else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
			r.outdir = argv[++i];
		else if (strcmp(argv[i], "--usage") == 0 && i + 1 < argc)
			usage = argv[++i];
		else if (addr == NULL && argv[i][0] != '-')
			addr = argv[i];
		else
			addr = NULL, i = argc;
	}
	if (addr == NULL)
		die(EX_USAGE,
		    "usage: renew ADDR [--key-type rsa2048|rsa3072|"
		    "ec-p256] [--out DIR] [--usage sign|sign,decrypt]");
	check_key_type(r.type);
	r.decrypt = csr_usage_parse(usage);
	mailbox_arg(NULL, addr, r.mbox, sizeof(r.mbox));
	r.cfg = load_config();
	renew_find_current(&r);
	if (str_ieq(r.rf.c.key_backend, "pkcs11"))
		renew_on_token(&r);
	else
		renew_in_key_dir(&r);
	db = open_db(r.cfg, DB_READWRITE);
	renew_record(&r, db);
	printf("renewal %lld for %s (%s): new %s key in %s\n"
	       "certificate request: %s\n"
	       "send it to the CA; then: smimectl import --mailbox %s --kind "
	       "%s "
	       "--cert ISSUED.pem\n",
	       r.ren.id, r.mbox, r.rf.c.serial, r.type, r.keypath, r.csrpath,
	       r.mbox, r.rf.c.kind);
	free(r.ren.pubkey_sha256);
	free(r.newuri);
	free(r.csr_pem);
	X509_REQ_free(r.req);
	EVP_PKEY_free(r.key);
	sk_X509_pop_free(r.sk, X509_free);
	db_cert_clear(&r.rf.c);
	db_close(db);
	config_free(r.cfg);
	return EX_OK;
}
