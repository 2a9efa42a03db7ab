/* smimectl: keys on PKCS#11 tokens -- import, keygen, tokens (see p11.h). */
#include "smimectl.h"
#include "certstore.h"
#include "p11.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include <openssl/x509v3.h>

/* One context for the whole run; it lives until exit, as do the keys it
 * hands out. */
static struct p11_ctx *hsm_ctx(const struct config *cfg)
{
	static struct p11_ctx *ctx;
	struct p11_settings set = {
		.module = cfg->pkcs11_module,
		.pin_tokens = cfg->pkcs11_token,
		.pin_files = cfg->pkcs11_pin_file,
		.npins = cfg->npkcs11_tokens,
		.sessions = 1,
		.retry = 1,
	};

	if (ctx == NULL && (ctx = p11_ctx_new(&set)) == NULL)
		die(EX_OSERR, "out of memory");
	return ctx;
}

EVP_PKEY *hsm_key_for_cert(const struct config *cfg, const char *uri,
                           X509 *cert)
{
	EVP_PKEY *key;
	char err[1024];

	if (p11_ctx_key(hsm_ctx(cfg), uri, cert, &key, NULL, err,
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
                     const char *label, const char *type, char **newuri,
                     char **pubkey_sha256)
{
	EVP_PKEY *pub, *key;
	char err[1024];

	if (p11_keygen(hsm_ctx(cfg), uri, label, type, &pub, newuri, err,
	               sizeof(err)) != 0)
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

/* subject CN=mailbox, subjectAltName rfc822Name mailbox: the CA puts its
 * own subject in the certificate; the address is what must match. */
static X509_REQ *new_request(const char *mbox, EVP_PKEY *key, int ec)
{
	X509_NAME *name = X509_NAME_new();
	X509_EXTENSION *san;
	X509_REQ *req = NULL;
	char v[400];

	snprintf(v, sizeof(v), "email:%s", mbox);
	san = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, v);
	if (name && san &&
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
	                               (const unsigned char *)mbox, -1, -1, 0))
		req = make_csr(name, san, key, ec);
	X509_NAME_free(name);
	X509_EXTENSION_free(san);
	return req;
}

int cmd_keygen(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mailbox", required_argument, NULL, 'm' },
		{ "pkcs11-uri", required_argument, NULL, 'U' },
		{ "key-type", required_argument, NULL, 't' },
		{ "kind", required_argument, NULL, 'k' },
		{ "out", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	const char *mailbox = NULL, *uri = NULL, *type = "rsa2048",
	           *kind = "individual", *outdir = ".";
	struct config *cfg;
	struct db *db;
	struct db_renewal ren;
	struct p11_uri u;
	EVP_PKEY *key;
	X509_REQ *req;
	FILE *f;
	char err[1024], mbox[320], csrpath[4096], *csr_pem, *newuri = NULL;
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'm':
			mailbox = optarg;
			break;
		case 'U':
			uri = optarg;
			break;
		case 't':
			type = optarg;
			break;
		case 'k':
			kind = optarg;
			break;
		case 'o':
			outdir = optarg;
			break;
		default:
			return EX_USAGE;
		}
	}
	if (!mailbox || !uri || optind != argc)
		die(EX_USAGE, "usage: keygen --mailbox ADDR --pkcs11-uri URI "
		              "[--key-type rsa2048|rsa3072|ec-p256] [--kind K] "
		              "[--out DIR]");
	check_key_type(type);
	check_kind(kind);
	if (addr_from_header(mailbox, mbox, sizeof(mbox), err, sizeof(err)) !=
	    0)
		die(EX_USAGE, "--mailbox %s: %s", mailbox, err);
	if (p11_uri_parse(uri, &u, err, sizeof(err)) != 0)
		die(EX_USAGE, "--pkcs11-uri %s: %s", uri, err);
	cfg = load_config();
	if (!config_signing_domain(cfg, addr_domain(mbox)))
		fprintf(stderr,
		        "smimectl: warning: %s is not in a signing domain of "
		        "%s\n",
		        mbox, cfg->path);
	f = open_csr(outdir, mbox, csrpath, sizeof(csrpath));
	become_user(cfg);
	memset(&ren, 0, sizeof(ren));
	key = hsm_keygen(cfg, uri, u.object ? u.object : mbox, type, &newuri,
	                 &ren.pubkey_sha256);
	p11_uri_clear(&u);
	req = new_request(mbox, key, strcmp(type, "ec-p256") == 0);
	if (req == NULL)
		die(EX_SOFTWARE,
		    "cannot build the certificate request (the new "
		    "key %s stays on the token)",
		    newuri);
	csr_pem = write_csr(f, req, csrpath);

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
	printf("key request %lld for %s: new %s key on the token: %s\n"
	       "certificate request: %s\n"
	       "send it to the CA; then: smimectl import --mailbox %s --kind "
	       "%s "
	       "--cert ISSUED.pem\n",
	       ren.id, mbox, type, newuri, csrpath, mbox, kind);
	free(ren.pubkey_sha256);
	free(newuri);
	free(csr_pem);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
	db_close(db);
	config_free(cfg);
	return EX_OK;
}
