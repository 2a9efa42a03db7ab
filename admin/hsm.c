/* smimectl: keys on PKCS#11 tokens -- import, keygen, tokens (see p11.h). */
#include "smimectl.h"
#include "certstore.h"
#include "keystore.h"
#include "p11.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

/* One key store for the whole run, one session per token, 1 s between
 * reconnects; it lives until exit, as do the keys it hands out. */
struct keystore *hsm_keystore(const struct config *cfg)
{
	static struct keystore *ks;

	if (ks == NULL && (ks = keystore_new_config(cfg, 1, 1)) == NULL)
		die(EX_OSERR, "out of memory");
	return ks;
}

static struct p11_ctx *hsm_ctx(const struct config *cfg)
{
	return keystore_p11(hsm_keystore(cfg));
}

EVP_PKEY *hsm_load_key(const struct config *cfg, const struct key_ref *ref,
                       X509 *cert)
{
	EVP_PKEY *key = NULL;
	char err[2048];

	if (keystore_load_key(hsm_keystore(cfg), ref, cert, &key, NULL, err,
	                      sizeof(err)) != 0)
		die(EX_DATAERR, "refused: %s", err);
	return key;
}

X509 *hsm_cert_of_key(const struct config *cfg, const char *uri)
{
	X509 *cert;
	char err[1024];

	if (p11_ctx_key_cert(hsm_ctx(cfg), uri, &cert, err, sizeof(err)) != 0)
		die(EX_DATAERR, "refused: %s", err);
	return cert;
}

EVP_PKEY *hsm_keygen(const struct config *cfg, const char *uri,
                     const char *label, const char *type, int decrypt,
                     char **newuri, char **pubkey_sha256)
{
	EVP_PKEY *pub, *key;
	char err[1024];

	if (p11_keygen(hsm_ctx(cfg), uri, label, type, decrypt, &pub, newuri,
	               err, sizeof(err)) != 0)
		die(EX_UNAVAILABLE, "%s", err);
	if (p11_ctx_key_pub(hsm_ctx(cfg), *newuri, pub, &key, err,
	                    sizeof(err)) != 0)
		die(EX_SOFTWARE, "the new key %s cannot sign: %s", *newuri,
		    err);
	*pubkey_sha256 = pubkey_sha256_hex(pub);
	EVP_PKEY_free(pub);
	if (*pubkey_sha256 == NULL)
		die(EX_SOFTWARE, "cannot hash the new public key");
	return key;
}

int cmd_tokens(int argc, char **argv)
{
	const char *module = NULL;
	struct config *cfg;
	char err[1024];

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--module") == 0 && i + 1 < argc)
			module = argv[++i];
		else
			die(EX_USAGE, "usage: tokens [--module PATH]");
	}
	cfg = load_config();
	if (module == NULL)
		module = cfg->pkcs11_module;
	if (module == NULL)
		die(EX_USAGE,
		    "no PKCS#11 module: set pkcs11_module in %s or "
		    "give --module PATH",
		    cfg->path);
	become_user(cfg);
	if (p11_list(hsm_ctx(cfg), module, stdout, err, sizeof(err)) != 0)
		die(EX_UNAVAILABLE, "%s", err);
	config_free(cfg);
	return EX_OK;
}

int cmd_keygen(int argc, char **argv)
{
	const char *mailbox = NULL, *uri = NULL, *type = "rsa2048",
	           *kind = "individual", *outdir = ".", *usage = NULL;
	struct config *cfg;
	struct db *db;
	struct db_renewal ren;
	struct p11_uri u;
	EVP_PKEY *key;
	X509_REQ *req;
	FILE *f;
	char err[1024], mbox[320], csrpath[4096], *csr_pem, *newuri = NULL;
	const struct long_arg opts[] = {
		{ "mailbox", &mailbox }, { "pkcs11-uri", &uri },
		{ "key-type", &type },   { "kind", &kind },
		{ "out", &outdir },      { "usage", &usage },
		{ NULL, NULL },
	};
	int decrypt;

	if (parse_long_args(argc, argv, opts) != 0)
		return EX_USAGE;
	if (!mailbox || !uri || optind != argc)
		die(EX_USAGE, "usage: keygen --mailbox ADDR --pkcs11-uri URI "
		              "[--key-type rsa2048|rsa3072|ec-p256] [--kind K] "
		              "[--out DIR] [--usage sign|sign,decrypt]");
	check_key_type(type);
	decrypt = csr_usage_parse(usage);
	check_kind(kind);
	mailbox_arg("--mailbox", mailbox, mbox, sizeof(mbox));
	if (p11_uri_parse(uri, &u, err, sizeof(err)) != 0)
		die(EX_USAGE, "--pkcs11-uri %s: %s", uri, err);
	cfg = load_config();
	warn_signing_domain(cfg, mbox);
	f = csr_open(outdir, mbox, csrpath, sizeof(csrpath));
	become_user(cfg);
	memset(&ren, 0, sizeof(ren));
	key = hsm_keygen(cfg, uri, u.object ? u.object : mbox, type, decrypt,
	                 &newuri, &ren.pubkey_sha256);
	p11_uri_clear(&u);
	req = csr_for_mailbox(mbox, key, strcmp(type, "ec-p256") == 0, decrypt);
	if (req == NULL)
		die(EX_SOFTWARE,
		    "cannot build the certificate request (the new "
		    "key %s stays on the token)",
		    newuri);
	csr_pem = csr_write(f, req, csrpath);

	ren.mailbox = mbox;
	ren.kind = (char *)kind;
	ren.key_backend = "pkcs11";
	ren.key_location = newuri;
	db = open_db(cfg, DB_READWRITE);
	if (db_begin(db, err, sizeof(err)) != 0 ||
	    db_renewal_add(db, &ren, csr_pem, 0, actor(), err, sizeof(err)) !=
	            0 ||
	    db_commit(db, err, sizeof(err)) != 0) {
		db_rollback(db);
		die(EX_TEMPFAIL,
		    "nothing recorded: %s (the new key %s stays on "
		    "the token)",
		    err, newuri);
	}
	printf("key request %lld for %s: new %s key (%s) on the token: %s\n"
	       "certificate request: %s\n"
	       "send it to the CA; then: smimectl import --mailbox %s --kind "
	       "%s "
	       "--cert ISSUED.pem\n",
	       ren.id, mbox, type, decrypt ? "sign,decrypt" : "sign", newuri,
	       csrpath, mbox, kind);
	free(ren.pubkey_sha256);
	free(newuri);
	free(csr_pem);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
	db_close(db);
	config_free(cfg);
	return EX_OK;
}
