/* certstore -- certificate checks and conversions (see .h); keys are in
 * keystore.c. */
#include "certstore.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/x509v3.h>

STACK_OF(X509) *cert_stack_from_pem(const char *pem)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	BIO *bio;
	X509 *x;

	if (sk == NULL || pem == NULL)
		return sk;
	bio = BIO_new_mem_buf(pem, -1);
	if (bio == NULL)
		return sk;
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
		if (!sk_X509_push(sk, x))
			X509_free(x);
	ERR_clear_error();
	BIO_free(bio);
	return sk;
}

/* Largest certificate file read (bundles of a few hundred certificates). */
#define CERT_FILE_MAX (16 * 1024 * 1024)

/* Push the certificates of a DER/BER PKCS#7 SignedData (or
 * signedAndEnveloped) onto sk; returns how many, -1 when der is not one. */
static int push_pkcs7_certs(const unsigned char *der, long len,
                            STACK_OF(X509) *sk)
{
	const unsigned char *p = der;
	PKCS7 *p7 = d2i_PKCS7(NULL, &p, len);
	STACK_OF(X509) *certs = NULL;
	int n = 0;

	if (p7 == NULL)
		return -1;
	if (PKCS7_type_is_signed(p7) && p7->d.sign)
		certs = p7->d.sign->cert;
	else if (PKCS7_type_is_signedAndEnveloped(p7) &&
	         p7->d.signed_and_enveloped)
		certs = p7->d.signed_and_enveloped->cert;
	for (int i = 0; i < sk_X509_num(certs); i++) {
		X509 *x = sk_X509_value(certs, i);
		if (!X509_up_ref(x))
			continue;
		if (sk_X509_push(sk, x))
			n++;
		else
			X509_free(x);
	}
	PKCS7_free(p7);
	return n;
}

/* Every certificate of the PEM blocks in bio: CERTIFICATE, X509
 * CERTIFICATE, TRUSTED CERTIFICATE and PKCS7 (also "PKCS #7 SIGNED DATA"
 * and CMS); other blocks (keys, CRLs) are skipped. */
static void push_pem_certs(BIO *bio, STACK_OF(X509) *sk)
{
	char *name = NULL, *header = NULL;
	unsigned char *data = NULL;
	long len = 0;

	while (PEM_read_bio(bio, &name, &header, &data, &len)) {
		const unsigned char *p = data;
		X509 *x = NULL;
		if (strcmp(name, PEM_STRING_X509) == 0 ||
		    strcmp(name, PEM_STRING_X509_OLD) == 0)
			x = d2i_X509(NULL, &p, len);
		else if (strcmp(name, PEM_STRING_X509_TRUSTED) == 0)
			x = d2i_X509_AUX(NULL, &p, len);
		else if (strcmp(name, PEM_STRING_PKCS7) == 0 ||
		         strcmp(name, "PKCS #7 SIGNED DATA") == 0 ||
		         strcmp(name, PEM_STRING_CMS) == 0)
			(void)push_pkcs7_certs(data, len, sk);
		if (x && !sk_X509_push(sk, x))
			X509_free(x);
		OPENSSL_free(name);
		OPENSSL_free(header);
		OPENSSL_free(data);
		name = header = NULL;
		data = NULL;
	}
	ERR_clear_error();
}

int cert_read_file(const char *path, STACK_OF(X509) **out, char *err,
                   size_t errlen)
{
	BIO *bio = BIO_new_file(path, "rb"), *mem = NULL;
	STACK_OF(X509) *sk = NULL;
	unsigned char buf[16384];
	const unsigned char *data, *p;
	long len = 0;
	int n;
	X509 *x;

	*out = NULL;
	if (bio == NULL) {
		ERR_clear_error();
		return seterr(err, errlen, "%s: %s", path, strerror(errno));
	}
	mem = BIO_new(BIO_s_mem());
	sk = sk_X509_new_null();
	if (mem == NULL || sk == NULL)
		goto oom;
	while ((n = BIO_read(bio, buf, sizeof(buf))) > 0) {
		if (BIO_write(mem, buf, n) != n)
			goto oom;
		len += n;
		if (len > CERT_FILE_MAX) {
			BIO_free(bio);
			BIO_free(mem);
			sk_X509_free(sk);
			return seterr(err, errlen,
			              "%s: larger than %d MiB, not a "
			              "certificate "
			              "file",
			              path, CERT_FILE_MAX / (1024 * 1024));
		}
	}
	BIO_free(bio);
	bio = NULL;
	len = BIO_get_mem_data(mem, (char **)&data);
	if (len > 0 && memmem(data, (size_t)len, "-----BEGIN ", 11) != NULL) {
		BIO *rd = BIO_new_mem_buf(data, (int)len);
		if (rd == NULL)
			goto oom;
		push_pem_certs(rd, sk);
		BIO_free(rd);
	} else if (len > 0) {
		/* DER: one certificate, or a PKCS#7 bundle (.p7b/.p7c) */
		p = data;
		x = d2i_X509(NULL, &p, len);
		if (x && !sk_X509_push(sk, x))
			X509_free(x);
		if (x == NULL)
			(void)push_pkcs7_certs(data, len, sk);
	}
	ERR_clear_error();
	BIO_free(mem);
	if (sk_X509_num(sk) == 0) {
		sk_X509_free(sk);
		return seterr(err, errlen,
		              "%s: no certificate (PEM, DER or PKCS#7)", path);
	}
	*out = sk;
	return 0;
oom:
	ERR_clear_error();
	BIO_free(bio);
	BIO_free(mem);
	sk_X509_pop_free(sk, X509_free);
	return seterr(err, errlen, "%s: out of memory", path);
}

char *cert_to_pem(X509 *x)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *out = NULL;
	long len;

	if (bio && PEM_write_bio_X509(bio, x)) {
		len = BIO_get_mem_data(bio, &data);
		out = strndup(data, (size_t)len);
	}
	BIO_free(bio);
	return out;
}

char *cert_stack_to_pem(STACK_OF(X509) *sk)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *out = NULL;
	long len;

	if (bio == NULL)
		return NULL;
	for (int i = 0; i < sk_X509_num(sk); i++)
		PEM_write_bio_X509(bio, sk_X509_value(sk, i));
	len = BIO_get_mem_data(bio, &data);
	out = strndup(len > 0 ? data : "", (size_t)(len > 0 ? len : 0));
	BIO_free(bio);
	return out;
}

static char *asn1_string_dup_lower(const ASN1_STRING *s)
{
	const unsigned char *d = ASN1_STRING_get0_data(s);
	int len = ASN1_STRING_length(s);
	char *out;

	if (d == NULL || len <= 0 || memchr(d, '\0', (size_t)len))
		return NULL;
	out = strndup((const char *)d, (size_t)len);
	return str_lower(out);
}

/* Call fn for each e-mail address in x (lower-case) until it returns
 * non-zero; returns that value. */
static int cert_each_email(X509 *x, int (*fn)(const char *, void *), void *arg)
{
	GENERAL_NAMES *gens;
	X509_NAME *name;
	int rc = 0, idx = -1;

	gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; gens && rc == 0 && i < sk_GENERAL_NAME_num(gens); i++) {
		GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		if (g->type == GEN_EMAIL) {
			char *e = asn1_string_dup_lower(g->d.rfc822Name);
			if (e)
				rc = fn(e, arg);
			free(e);
		}
	}
	GENERAL_NAMES_free(gens);
	name = X509_get_subject_name(x);
	while (rc == 0 &&
	       (idx = X509_NAME_get_index_by_NID(name, NID_pkcs9_emailAddress,
	                                         idx)) >= 0) {
		X509_NAME_ENTRY *ne = X509_NAME_get_entry(name, idx);
		char *e = asn1_string_dup_lower(X509_NAME_ENTRY_get_data(ne));
		if (e)
			rc = fn(e, arg);
		free(e);
	}
	return rc;
}

static int email_eq(const char *e, void *arg)
{
	return strcasecmp(e, arg) == 0;
}

static int email_first(const char *e, void *arg)
{
	*(char **)arg = strdup(e);
	return 1;
}

int cert_has_email(X509 *x, const char *addr)
{
	return cert_each_email(x, email_eq, (void *)addr);
}

char *cert_first_email(X509 *x)
{
	char *out = NULL;

	cert_each_email(x, email_first, &out);
	return out;
}

time_t asn1_time_to_time(const ASN1_TIME *t)
{
	struct tm tm;

	if (t == NULL || !ASN1_TIME_to_tm(t, &tm))
		return 0;
	return timegm(&tm);
}

int validity_check(time_t not_before, time_t not_after, time_t now, char *err,
                   size_t errlen)
{
	char tb[40];

	if (now < not_before)
		return seterr(err, errlen, "certificate is not valid before %s",
		              time_fmt(not_before, tb, sizeof(tb)));
	if (now > not_after)
		return seterr(err, errlen, "certificate expired on %s",
		              time_fmt(not_after, tb, sizeof(tb)));
	return 0;
}

int cert_check_usage(X509 *x, const char *mailbox, char *err, size_t errlen)
{
	if (X509_check_purpose(x, X509_PURPOSE_SMIME_SIGN, 0) != 1) {
		ERR_clear_error();
		return seterr(err, errlen,
		              "certificate's key usage or extended key usage "
		              "does not allow e-mail signing");
	}
	if (mailbox && !cert_has_email(x, mailbox))
		return seterr(err, errlen,
		              "certificate does not carry %s (neither "
		              "subjectAltName rfc822Name nor subject "
		              "emailAddress)",
		              mailbox);
	return 0;
}

int cert_check_signing(X509 *x, const char *mailbox, time_t now, char *err,
                       size_t errlen)
{
	if (validity_check(asn1_time_to_time(X509_get0_notBefore(x)),
	                   asn1_time_to_time(X509_get0_notAfter(x)), now, err,
	                   errlen) != 0)
		return -1;
	return cert_check_usage(x, mailbox, err, errlen);
}

int cert_matches_key(X509 *x, EVP_PKEY *key)
{
	int rc = X509_check_private_key(x, key) == 1;

	ERR_clear_error();
	return rc;
}

static char *hex(const unsigned char *p, size_t n)
{
	char *out = malloc(n * 2 + 1);

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02X", p[i]);
	out[n * 2] = '\0';
	return out;
}

char *cert_name_text(X509_NAME *n)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *out = NULL;
	long len;

	if (bio == NULL)
		return NULL;
	X509_NAME_print_ex(bio, n, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
	len = BIO_get_mem_data(bio, &data);
	out = strndup(len > 0 ? data : "", (size_t)(len > 0 ? len : 0));
	BIO_free(bio);
	return out;
}

int cert_info_get(X509 *x, struct cert_info *ci)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	BIGNUM *bn;
	char *s;

	memset(ci, 0, sizeof(*ci));
	bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	s = bn ? BN_bn2hex(bn) : NULL;
	ci->serial = xstrdup(s);
	OPENSSL_free(s);
	BN_free(bn);
	if (X509_digest(x, EVP_sha256(), md, &mdlen))
		ci->fingerprint = hex(md, mdlen);
	ci->subject = cert_name_text(X509_get_subject_name(x));
	ci->issuer = cert_name_text(X509_get_issuer_name(x));
	ci->not_before = asn1_time_to_time(X509_get0_notBefore(x));
	ci->not_after = asn1_time_to_time(X509_get0_notAfter(x));
	if (!ci->serial || !ci->fingerprint || !ci->subject || !ci->issuer) {
		cert_info_clear(ci);
		return -1;
	}
	return 0;
}

void cert_info_clear(struct cert_info *ci)
{
	free(ci->serial);
	free(ci->fingerprint);
	free(ci->subject);
	free(ci->issuer);
	memset(ci, 0, sizeof(*ci));
}

static int self_signed(X509 *x)
{
	return X509_check_issued(x, x) == X509_V_OK;
}

static X509 *find_issuer(X509 *x, STACK_OF(X509) *pool)
{
	for (int i = 0; i < sk_X509_num(pool); i++) {
		X509 *c = sk_X509_value(pool, i);
		if (c != x && X509_check_issued(c, x) == X509_V_OK)
			return c;
	}
	return NULL;
}

STACK_OF(X509) *cert_build_chain(X509 *leaf, STACK_OF(X509) *extra,
                                 const char *ca_file)
{
	STACK_OF(X509) *pool = sk_X509_new_null(), *chain = sk_X509_new_null();
	STACK_OF(X509) *cas = NULL;
	X509 *cur = leaf, *iss;
	char err[256];

	if (pool == NULL || chain == NULL)
		goto out;
	for (int i = 0; extra && i < sk_X509_num(extra); i++)
		sk_X509_push(pool, sk_X509_value(extra, i));
	if (ca_file && cert_read_file(ca_file, &cas, err, sizeof(err)) == 0)
		for (int i = 0; i < sk_X509_num(cas); i++)
			sk_X509_push(pool, sk_X509_value(cas, i));
	while (!self_signed(cur) && (iss = find_issuer(cur, pool)) != NULL &&
	       sk_X509_num(chain) < 10) {
		if (self_signed(iss))
			break; /* the root stays out */
		X509_up_ref(iss);
		sk_X509_push(chain, iss);
		cur = iss;
	}
out:
	ERR_clear_error();
	sk_X509_free(pool);
	sk_X509_pop_free(cas, X509_free);
	return chain;
}

char *pubkey_sha256_hex(EVP_PKEY *key)
{
	unsigned char *der = NULL, md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int len = i2d_PUBKEY(key, &der);
	char *out;

	if (len <= 0)
		return NULL;
	if (!EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL)) {
		OPENSSL_free(der);
		return NULL;
	}
	OPENSSL_free(der);
	out = hex(md, mdlen);
	return out;
}

/* ---- recipient certificates (encryption) ----------------------------- */

struct email_list {
	char **v;
	size_t n;
	int oom;
};

static int email_collect(const char *e, void *arg)
{
	struct email_list *l = arg;
	char **v;

	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i], e) == 0)
			return 0;
	v = realloc(l->v, (l->n + 2) * sizeof(*v));
	if (v == NULL) {
		l->oom = 1;
		return 1;
	}
	l->v = v;
	if ((l->v[l->n] = strdup(e)) == NULL) {
		l->oom = 1;
		return 1;
	}
	l->v[++l->n] = NULL;
	return 0;
}

char **cert_emails(X509 *x)
{
	struct email_list l = { NULL, 0, 0 };

	if (x)
		cert_each_email(x, email_collect, &l);
	if (!l.oom && l.v == NULL)
		l.v = calloc(1, sizeof(*l.v));
	if (l.oom || l.v == NULL) {
		cert_emails_free(l.v);
		return NULL;
	}
	return l.v;
}

void cert_emails_free(char **v)
{
	if (v == NULL)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

int cert_check_encryption(X509 *x, char *err, size_t errlen)
{
	EVP_PKEY *pk = X509_get0_pubkey(x);
	uint32_t flags, ku, xku;
	int type;

	if (pk == NULL) {
		ERR_clear_error();
		return seterr(err, errlen,
		              "the certificate's public key cannot be read");
	}
	type = EVP_PKEY_get_base_id(pk);
	if (type != EVP_PKEY_RSA && type != EVP_PKEY_EC)
		return seterr(err, errlen,
		              "the key is %s, not RSA or EC: mail cannot be "
		              "encrypted to it",
		              OBJ_nid2sn(type) ? OBJ_nid2sn(type) : "unknown");
	/* also caches the extensions; -1 means they do not parse */
	if (X509_check_purpose(x, -1, 0) != 1) {
		ERR_clear_error();
		return seterr(err, errlen,
		              "the certificate's extensions cannot be parsed");
	}
	flags = X509_get_extension_flags(x);
	ku = X509_get_key_usage(x);
	xku = X509_get_extended_key_usage(x);
	if (flags & EXFLAG_KUSAGE) {
		if (type == EVP_PKEY_RSA && !(ku & KU_KEY_ENCIPHERMENT))
			return seterr(err, errlen,
			              "keyUsage does not allow encryption: an "
			              "RSA "
			              "recipient needs keyEncipherment");
		if (type == EVP_PKEY_EC && !(ku & KU_KEY_AGREEMENT))
			return seterr(err, errlen,
			              "keyUsage does not allow encryption: an "
			              "EC "
			              "recipient needs keyAgreement");
	}
	if ((flags & EXFLAG_XKUSAGE) && !(xku & (XKU_SMIME | XKU_ANYEKU)))
		return seterr(err, errlen,
		              "extendedKeyUsage does not include "
		              "emailProtection");
	/* OpenSSL's SMIME_ENCRYPT purpose insists on keyEncipherment, which
	 * an ECDH recipient does not have, and on the emailProtection bit,
	 * where anyExtendedKeyUsage alone is fine by RFC 5280.  Where it
	 * applies, it must agree; elsewhere the rest of it (the Netscape
	 * certificate type) is checked here. */
	if (type == EVP_PKEY_RSA &&
	    !((flags & EXFLAG_XKUSAGE) && !(xku & XKU_SMIME))) {
		if (X509_check_purpose(x, X509_PURPOSE_SMIME_ENCRYPT, 0) != 1) {
			ERR_clear_error();
			return seterr(err, errlen,
			              "OpenSSL's S/MIME encryption purpose "
			              "check "
			              "refuses the certificate (Netscape "
			              "certificate type or key usage)");
		}
	} else if (flags & EXFLAG_NSCERT) {
		/* S/MIME, or SSL client as OpenSSL tolerates; bits from the
		 * left: 0 SSL client, 2 S/MIME */
		ASN1_BIT_STRING *ns =
		        X509_get_ext_d2i(x, NID_netscape_cert_type, NULL, NULL);
		int smime = ns && (ASN1_BIT_STRING_get_bit(ns, 2) ||
		                   ASN1_BIT_STRING_get_bit(ns, 0));
		ASN1_BIT_STRING_free(ns);
		ERR_clear_error();
		if (!smime)
			return seterr(err, errlen,
			              "the Netscape certificate type does not "
			              "include S/MIME");
	}
	return 0;
}

int cert_verify_chain(X509 *x, STACK_OF(X509) *untrusted, const char *ca_file,
                      time_t now, char *err, size_t errlen)
{
	STACK_OF(X509) *cas = NULL;
	X509_STORE *store = NULL;
	X509_STORE_CTX *ctx = NULL;
	int rc = -1, code, depth;
	X509 *at;
	char *subject;

	if (ca_file == NULL)
		return seterr(err, errlen,
		              "no trust bundle (ca_file) to verify against");
	if (cert_read_file(ca_file, &cas, err, errlen) != 0)
		return -1;
	store = X509_STORE_new();
	ctx = X509_STORE_CTX_new();
	if (store == NULL || ctx == NULL) {
		seterr(err, errlen, "out of memory");
		goto out;
	}
	for (int i = 0; i < sk_X509_num(cas); i++)
		if (!X509_STORE_add_cert(store, sk_X509_value(cas, i))) {
			seterr_ssl(err, errlen, "cannot use the trust bundle");
			goto out;
		}
	if (!X509_STORE_CTX_init(ctx, store, x, untrusted)) {
		seterr_ssl(err, errlen, "cannot set up verification");
		goto out;
	}
	X509_STORE_CTX_set_time(ctx, 0, now);
	if (X509_verify_cert(ctx) == 1) {
		rc = 0;
		goto out;
	}
	code = X509_STORE_CTX_get_error(ctx);
	depth = X509_STORE_CTX_get_error_depth(ctx);
	at = X509_STORE_CTX_get_current_cert(ctx);
	subject = at ? cert_name_text(X509_get_subject_name(at)) : NULL;
	seterr(err, errlen, "does not verify against %s: %s (depth %d%s%s)",
	       ca_file, X509_verify_cert_error_string(code), depth,
	       subject ? ": " : "", subject ? subject : "");
	free(subject);
out:
	ERR_clear_error();
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	sk_X509_pop_free(cas, X509_free);
	return rc;
}
