/*
 * import -- smimectl import: a signing certificate and its key (PKCS#12,
 * PEM, a key on a PKCS#11 token, or the key of a pending renewal), checked
 * before anything is written, then the key copied to key_dir and the
 * certificate recorded and mapped in one transaction.
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

#include <openssl/crypto.h>
#include <openssl/x509.h>

#include "certstore.h"
#include "config.h"
#include "db.h"
#include "util.h"
#include "smimectl.h"

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

/* One import: what the options name, what was read and checked, and where
 * the key ends up. */
struct import {
	const char *mailbox, *kind, *p12, *pass, *certf, *keyf, *owner, *nip,
	        *unit, *contact, *uri;
	struct config *cfg;
	struct db *db;
	EVP_PKEY *key;
	X509 *cert;
	STACK_OF(X509) *extra, *chain;
	struct cert_info ci;
	struct db_renewal ren; /* ren.id > 0: the key of this renewal */
	char mbox[320], keypath[4096], passpath[4096];
};

/* The options into im, checked; EX_OK, EX_USAGE after getopt's message,
 * or dies with the usage. */
static int import_options(int argc, char **argv, struct import *im)
{
	const struct long_arg opts[] = {
		{ "mailbox", &im->mailbox }, { "kind", &im->kind },
		{ "p12", &im->p12 },         { "passphrase-file", &im->pass },
		{ "cert", &im->certf },      { "key", &im->keyf },
		{ "owner", &im->owner },     { "nip", &im->nip },
		{ "unit", &im->unit },       { "contact", &im->contact },
		{ "pkcs11-uri", &im->uri },  { NULL, NULL },
	};

	if (parse_long_args(argc, argv, opts) != 0)
		return EX_USAGE;
	if (!im->mailbox || !im->kind ||
	    (im->uri && (im->p12 || im->keyf || im->pass)) ||
	    (!im->uri && !im->p12 == !im->certf) || (im->p12 && !im->pass) ||
	    (im->certf && !im->keyf && im->pass) || optind != argc)
		die(EX_USAGE,
		    "usage: import --mailbox ADDR --kind individual|role|system"
		    " (--p12 FILE --passphrase-file FILE | --cert PEM --key PEM"
		    " [--passphrase-file FILE] | --pkcs11-uri URI [--cert PEM]"
		    " | --cert PEM (after renew or keygen))"
		    " [--owner NAME] [--nip NIP] [--unit UNIT] [--contact "
		    "ADDR]");
	/* stored as text, and PostgreSQL takes UTF-8 only: both backends
	 * refuse other octets here, before anything is read or written */
	const struct long_arg text[] = {
		{ "owner", &im->owner }, { "nip", &im->nip },
		{ "unit", &im->unit },   { "contact", &im->contact },
	};
	for (size_t i = 0; i < sizeof(text) / sizeof(text[0]); i++)
		if (*text[i].value && !str_is_utf8(*text[i].value))
			die(EX_DATAERR,
			    "--%s: not UTF-8 text (write it in UTF-8, as a "
			    "terminal with a UTF-8 locale does)",
			    text[i].name);
	if (im->contact && strchr(im->contact, '@') == NULL)
		die(EX_USAGE, "--contact %s is not a mail address",
		    im->contact);
	check_kind(im->kind);
	mailbox_arg("--mailbox", im->mailbox, im->mbox, sizeof(im->mbox));
	return EX_OK;
}

/* The certificate file certf: the certificate into *cert, the rest of the
 * file (its chain) into *extra. */
static void import_read_cert(const char *certf, X509 **cert,
                             STACK_OF(X509) **extra)
{
	STACK_OF(X509) *sk;
	char err[2048];

	if (cert_read_file(certf, &sk, err, sizeof(err)) != 0)
		die(EX_DATAERR, "refused: %s", err);
	*cert = sk_X509_shift(sk);
	*extra = sk;
}

/* --pkcs11-uri: the key stays on its token; the certificate is --cert or
 * the token's object with the key's CKA_ID. */
static void import_read_token(struct import *im)
{
	/* the key stays on its token: use it as the milter's user */
	become_user(im->cfg);
	if (im->certf)
		import_read_cert(im->certf, &im->cert, &im->extra);
	else {
		im->cert = hsm_cert_of_key(im->cfg, im->uri);
		im->extra = sk_X509_new_null();
	}
	im->key = hsm_load_key(im->cfg,
	                       &(struct key_ref){ KEY_PKCS11, im->uri, NULL },
	                       im->cert);
}

/* --cert without --key: the certificate of a renewal.  Its key waits in
 * key_dir (or on a token), found by the public key; the database is opened
 * here, as the milter's user. */
static void import_find_renewal(struct import *im, struct key_ref *ref)
{
	char err[2048];
	char *h = pubkey_sha256_hex(X509_get0_pubkey(im->cert));
	int rc;

	become_user(im->cfg);
	im->db = open_db(im->cfg, DB_READWRITE);
	rc = h ? db_renewal_find(im->db, h, &im->ren, err, sizeof(err)) : -1;
	free(h);
	if (rc < 0)
		die(EX_SOFTWARE, "%s", err);
	if (rc == 0)
		die(EX_DATAERR, "refused: no pending renewal holds the key of "
		                "this certificate (give --key, or run "
		                "\"smimectl renew\" first)");
	ref->backend = key_backend_parse(im->ren.key_backend);
	ref->location = im->ren.key_location;
	ref->secret_file = im->ren.secret_file;
}

/* --cert PEM [--key PEM [--passphrase-file FILE]], or the certificate of
 * a renewal: the certificate, then its key. */
static void import_read_pem(struct import *im)
{
	struct key_ref ref = { KEY_PEM, im->keyf, im->pass };

	import_read_cert(im->certf, &im->cert, &im->extra);
	if (im->keyf == NULL)
		import_find_renewal(im, &ref);
	im->key = hsm_load_key(im->cfg, &ref, im->cert);
}

/* The certificate and its key, read as the caller (a token key as the
 * milter's user); dies with "refused: ..." on what cannot be used. */
static void import_read(struct import *im)
{
	char err[2048];

	if (im->uri)
		import_read_token(im);
	else if (im->p12) {
		if (keystore_read_pkcs12(im->p12, im->pass, &im->key, &im->cert,
		                         &im->extra, err, sizeof(err)) != 0)
			die(EX_DATAERR, "refused: %s", err);
	} else
		import_read_pem(im);
}

/* The certificate fits the mailbox and the key, is valid and usable for
 * S/MIME; its chain is built against ca_file. */
static void import_check(struct import *im)
{
	struct cert_info *ci = &im->ci;
	char err[2048], t[40];

	if (cert_info_get(im->cert, ci) != 0)
		die(EX_SOFTWARE, "cannot read certificate details");
	if (!cert_has_email(im->cert, im->mbox))
		die(EX_DATAERR,
		    "refused: certificate %s (%s) does not carry %s (neither "
		    "subjectAltName rfc822Name nor subject emailAddress)",
		    ci->serial, ci->subject, im->mbox);
	if (!cert_matches_key(im->cert, im->key))
		die(EX_DATAERR,
		    "refused: the private key does not match certificate %s",
		    ci->serial);
	if (ci->not_after < time(NULL))
		die(EX_DATAERR, "refused: certificate %s expired on %s",
		    ci->serial, time_fmt(ci->not_after, t, sizeof(t)));
	if (cert_check_usage(im->cert, im->mbox, err, sizeof(err)) != 0)
		die(EX_DATAERR, "refused: %s", err);
	if (ci->not_before > time(NULL))
		fprintf(stderr,
		        "smimectl: note: certificate %s is valid only from "
		        "%s\n",
		        ci->serial, time_fmt(ci->not_before, t, sizeof(t)));
	im->chain = cert_build_chain(im->cert, im->extra, im->cfg->ca_file);
}

/* A certificate is imported once. */
static void import_refuse_known(struct import *im)
{
	if (db_cert_exists(im->db, im->ci.fingerprint))
		die(EX_DATAERR, "refused: certificate %s is already imported",
		    im->ci.serial);
}

/* The key file (and passphrase file) copied into key_dir under the
 * certificate's fingerprint.  The key material is opened here, as the
 * caller; what is written from now on belongs to the milter user. */
static void import_copy_key(struct import *im)
{
	const struct config *cfg = im->cfg;
	char err[2048];
	int in_key, in_pass;

	in_key = open(im->p12 ? im->p12 : im->keyf, O_RDONLY | O_CLOEXEC);
	in_pass = im->pass ? open(im->pass, O_RDONLY | O_CLOEXEC) : -1;
	if (in_key < 0 || (im->pass && in_pass < 0))
		die(EX_NOINPUT, "cannot open the key material: %s",
		    strerror(errno));
	im->db = open_db_as_user(im->cfg, DB_READWRITE);
	import_refuse_known(im);
	key_dir_create(cfg);
	snprintf(im->keypath, sizeof(im->keypath), "%s/%.16s.%s", cfg->key_dir,
	         im->ci.fingerprint, im->p12 ? "p12" : "key.pem");
	snprintf(im->passpath, sizeof(im->passpath), "%s/%.16s.pass",
	         cfg->key_dir, im->ci.fingerprint);
	if (copy_private(in_key, im->keypath, err, sizeof(err)) != 0 ||
	    (im->pass &&
	     copy_private(in_pass, im->passpath, err, sizeof(err)) != 0))
		die(EX_CANTCREAT, "%s", err);
}

/* Where the key is kept from now on: its token, the renewal's files in
 * key_dir, or a copy made in key_dir; the database is open after this. */
static void import_place_key(struct import *im)
{
	if (im->uri) {
		snprintf(im->keypath, sizeof(im->keypath), "%s", im->uri);
		im->db = open_db(im->cfg, DB_READWRITE);
		import_refuse_known(im);
	} else if (im->ren.id > 0) {
		/* the key is already in key_dir */
		snprintf(im->keypath, sizeof(im->keypath), "%s",
		         im->ren.key_location);
		snprintf(im->passpath, sizeof(im->passpath), "%s",
		         im->ren.secret_file ? im->ren.secret_file : "");
		import_refuse_known(im);
	} else
		import_copy_key(im);
}

/* The certificate stored and mapped (and the renewal completed) in one
 * transaction; on failure the copied key files are removed again. */
static void import_record(struct import *im, struct db_cert *dc)
{
	struct db_renewal *ren = &im->ren;
	char err[2048];

	db_cert_from_info(dc, &im->ci);
	dc->kind = (char *)im->kind;
	dc->mailbox = im->mbox;
	dc->key_backend = im->uri       ? (char *)"pkcs11"
	                  : ren->id > 0 ? ren->key_backend
	                                : (char *)(im->p12 ? "pkcs12" : "pem");
	dc->key_location = im->keypath;
	dc->secret_file = (im->pass || (ren->id > 0 && ren->secret_file))
	                          ? im->passpath
	                          : NULL;
	dc->cert_pem = cert_to_pem(im->cert);
	dc->chain_pem = cert_stack_to_pem(im->chain);
	dc->owner = (char *)im->owner;
	dc->nip = (char *)im->nip;
	dc->unit = (char *)im->unit;
	dc->contact = (char *)im->contact;
	if (db_begin(im->db, err, sizeof(err)) != 0 ||
	    db_cert_add(im->db, dc, err, sizeof(err)) != 0 ||
	    db_map(im->db, im->mbox, dc->id, im->kind, actor(), err,
	           sizeof(err)) != 0 ||
	    (ren->id > 0 && db_renewal_complete(im->db, ren->id, dc->id, err,
	                                        sizeof(err)) != 0) ||
	    db_commit(im->db, err, sizeof(err)) != 0) {
		db_rollback(im->db);
		if (ren->id == 0 && !im->uri) {
			unlink(im->keypath);
			if (im->pass)
				unlink(im->passpath);
		}
		die(EX_TEMPFAIL, "nothing imported: %s", err);
	}
}

int cmd_import(int argc, char **argv)
{
	struct import im;
	struct db_cert dc;
	char t[40];
	int rc;

	memset(&im, 0, sizeof(im));
	rc = import_options(argc, argv, &im);
	if (rc != EX_OK)
		return rc;
	im.cfg = load_config();
	warn_signing_domain(im.cfg, im.mbox);
	/* read and check everything before writing anything */
	import_read(&im);
	import_check(&im);
	import_place_key(&im);
	import_record(&im, &dc);
	if (im.ren.id > 0)
		printf("matched to the key of renewal %lld\n", im.ren.id);
	printf("imported certificate %s for %s (%s), valid until %s, "
	       "chain of %d; id %lld\n",
	       im.ci.serial, im.mbox, im.kind,
	       time_fmt(im.ci.not_after, t, sizeof(t)), sk_X509_num(im.chain),
	       dc.id);
	printf("run \"smimectl reload\" (or send SIGUSR1) to start using it\n");
	free(dc.cert_pem);
	free(dc.chain_pem);
	db_renewal_clear(&im.ren);
	cert_info_clear(&im.ci);
	sk_X509_pop_free(im.chain, X509_free);
	sk_X509_pop_free(im.extra, X509_free);
	X509_free(im.cert);
	EVP_PKEY_free(im.key);
	db_close(im.db);
	config_free(im.cfg);
	return EX_OK;
}
