/*
 * csr -- certificate requests for smimectl renew and keygen: a PKCS#10 for
 * a key, the file it is written to and its PEM text.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "smimectl.h"

int csr_usage_parse(const char *usage)
{
	if (usage == NULL || strcmp(usage, "sign,decrypt") == 0 ||
	    strcmp(usage, "decrypt,sign") == 0)
		return 1;
	if (strcmp(usage, "sign") == 0)
		return 0;
	die(EX_USAGE, "--usage must be sign or sign,decrypt");
	return -1;
}

/* The keyUsage a request asks for: digitalSignature for signing, and for
 * decryption keyEncipherment (RSA key transport) or keyAgreement (ECDH). */
static const char *csr_key_usage(int ec, int decrypt)
{
	if (!decrypt)
		return "critical,digitalSignature";
	return ec ? "critical,digitalSignature,keyAgreement"
	          : "critical,digitalSignature,keyEncipherment";
}

X509_REQ *csr_make(const X509_NAME *subject, const X509_EXTENSION *san,
                   EVP_PKEY *key, int ec, int decrypt)
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
	                         csr_key_usage(ec, decrypt));
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

/* subject CN=mailbox, subjectAltName rfc822Name mailbox: the CA puts its
 * own subject in the certificate; the address is what must match. */
X509_REQ *csr_for_mailbox(const char *mbox, EVP_PKEY *key, int ec, int decrypt)
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
		req = csr_make(name, san, key, ec, decrypt);
	X509_NAME_free(name);
	X509_EXTENSION_free(san);
	return req;
}

FILE *csr_open(const char *outdir, const char *mbox, char *path, size_t pathlen)
{
	FILE *f;

	snprintf(path, pathlen, "%s/%s.csr.pem", outdir, mbox);
	f = fopen(path, "w");
	if (f == NULL)
		die(EX_CANTCREAT, "%s: %s", path, strerror(errno));
	return f;
}

char *csr_write(FILE *f, X509_REQ *req, const char *path)
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
