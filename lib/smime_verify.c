/* smime_verify -- one incoming S/MIME signature to an RFC 7281 verdict (see
 * .h).  The CMS steps of CMS_verify are taken one by one so that each
 * failure gets its own plain-words reason. */
#include "smime_verify.h"
#include "smime_verify_int.h"
#include "certstore.h"
#include "db.h"
#include "util.h"

#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

const char *smime_result_name(enum smime_result r)
{
	static const char *const names[] = {
		[SMIME_NONE] = "none",
		[SMIME_PASS] = "pass",
		[SMIME_FAIL] = "fail",
		[SMIME_NEUTRAL] = "neutral",
		[SMIME_TEMPERROR] = "temperror",
		[SMIME_PERMERROR] = "permerror",
	};

	return (unsigned)r < sizeof(names) / sizeof(names[0]) ? names[r]
	                                                      : "none";
}

void smime_verdict_clear(struct smime_verdict *v)
{
	if (v == NULL)
		return;
	free(v->identifier);
	free(v->serial);
	free(v->issuer);
	free(v->subject);
	X509_free(v->signer);
	sk_X509_pop_free(v->certs, X509_free);
	memset(v, 0, sizeof(*v));
}

int smime_judge(struct smime_verdict *v, enum smime_result r, const char *fmt,
                ...)
{
	va_list ap;

	v->result = r;
	va_start(ap, fmt);
	vsnprintf(v->reason, sizeof(v->reason), fmt, ap);
	va_end(ap);
	ERR_clear_error();
	return 0;
}

/* "YYYY-MM-DD" of t (UTC): the date of time_fmt's text, into buf (>= 32
 * bytes). */
static const char *day(time_t t, char *buf, size_t len)
{
	time_fmt(t, buf, len);
	buf[strcspn(buf, " ")] = '\0';
	return buf;
}

/* ---- content from a read callback ------------------------------------ */

struct fn_src {
	smime_read_fn rd;
	void *arg;
	int failed;
};

static int fn_bio_read(BIO *b, char *buf, size_t len, size_t *got)
{
	struct fn_src *src = BIO_get_data(b);
	ssize_t n = src->rd(src->arg, buf, len);

	*got = 0;
	if (n < 0) {
		src->failed = 1;
		return 0;
	}
	*got = (size_t)n;
	return n > 0;
}

static long fn_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	return cmd == BIO_CTRL_FLUSH;
}

static int fn_bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

/* The BIO method over a read callback, made once for all threads. */
static BIO_METHOD *fn_method;
static pthread_once_t fn_once = PTHREAD_ONCE_INIT;

static void fn_method_make(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
	                             "smime_verify read callback");
	int good = m != NULL;

	good = good && BIO_meth_set_read_ex(m, fn_bio_read);
	good = good && BIO_meth_set_ctrl(m, fn_bio_ctrl);
	good = good && BIO_meth_set_create(m, fn_bio_create);
	if (good)
		fn_method = m;
	else
		BIO_meth_free(m);
}

/* ---- the checks ------------------------------------------------------ */

/* The signingTime attribute of si, 0 when absent or unreadable. */
static time_t signing_time(CMS_SignerInfo *si)
{
	int idx = CMS_signed_get_attr_by_NID(si, NID_pkcs9_signingTime, -1);
	X509_ATTRIBUTE *a = idx >= 0 ? CMS_signed_get_attr(si, idx) : NULL;
	ASN1_TYPE *t = a ? X509_ATTRIBUTE_get0_type(a, 0) : NULL;

	if (t == NULL ||
	    (t->type != V_ASN1_UTCTIME && t->type != V_ASN1_GENERALIZEDTIME))
		return 0;
	return asn1_time_to_time(t->value.asn1_string);
}

/* Step 4: validity at the signing time and now. 1 when fine. */
static int check_times(const struct smime_verify_opts *o, X509 *x,
                       struct smime_verdict *v)
{
	time_t nb = asn1_time_to_time(X509_get0_notBefore(x));
	time_t na = asn1_time_to_time(X509_get0_notAfter(x));
	char a[32], b[32], c[32];

	if (v->signing_time && (v->signing_time < nb || v->signing_time > na)) {
		smime_judge(v, SMIME_FAIL,
		            "signed on %s, outside the certificate's validity "
		            "(%s to %s)",
		            day(v->signing_time, a, sizeof(a)),
		            day(nb, b, sizeof(b)), day(na, c, sizeof(c)));
		return 0;
	}
	if (o->now > na) {
		smime_judge(v, SMIME_FAIL, "certificate expired %s",
		            day(na, a, sizeof(a)));
		return 0;
	}
	if (o->now < nb) {
		smime_judge(v, SMIME_FAIL, "certificate not valid before %s",
		            day(nb, a, sizeof(a)));
		return 0;
	}
	return 1;
}

/* The reason for a chain that X509_verify_cert refused. */
static void chain_reason(X509_STORE_CTX *ctx, struct smime_verdict *v)
{
	int code = X509_STORE_CTX_get_error(ctx);
	int depth = X509_STORE_CTX_get_error_depth(ctx);
	X509 *at = X509_STORE_CTX_get_current_cert(ctx);
	char *subj = at ? cert_name_text(X509_get_subject_name(at)) : NULL;
	char *iss = at ? cert_name_text(X509_get_issuer_name(at)) : NULL;
	const char *who = depth > 0 ? "issuer certificate " : "certificate ";
	char d[32];
	int late;

	switch (code) {
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_CERT_UNTRUSTED:
		smime_judge(v, SMIME_FAIL, "issuer not trusted: %s",
		            iss ? iss : "(unknown)");
		break;
	case X509_V_ERR_CERT_HAS_EXPIRED:
	case X509_V_ERR_CERT_NOT_YET_VALID:
		late = code == X509_V_ERR_CERT_HAS_EXPIRED;
		smime_judge(v, SMIME_FAIL, "%s%s %s %s", who, subj ? subj : "",
		            late ? "expired" : "not valid before",
		            day(asn1_time_to_time(
		                        late ? X509_get0_notAfter(at)
		                             : X509_get0_notBefore(at)),
		                d, sizeof(d)));
		break;
	default:
		smime_judge(v, SMIME_FAIL,
		            "certificate chain does not verify: %s (%s%s)",
		            X509_verify_cert_error_string(code), who,
		            subj ? subj : "");
	}
	free(subj);
	free(iss);
}

X509_STORE *smime_trust_load(const char *ca_file, char *err, size_t errlen)
{
	STACK_OF(X509) *cas = NULL;
	X509_STORE *store;

	if (cert_read_file(ca_file, &cas, err, errlen) != 0)
		return NULL;
	store = X509_STORE_new();
	for (int i = 0; store && i < sk_X509_num(cas); i++)
		if (!X509_STORE_add_cert(store, sk_X509_value(cas, i))) {
			X509_STORE_free(store);
			store = NULL;
		}
	if (store == NULL)
		seterr(err, errlen, "out of memory");
	sk_X509_pop_free(cas, X509_free);
	return store;
}

/* Step 5: the chain to ca_file at now; *chain gets it (leaf first, trust
 * anchor last).  1 when fine. */
static int check_chain(const struct smime_verify_opts *o, X509 *x,
                       STACK_OF(X509) *untrusted, STACK_OF(X509) **chain,
                       struct smime_verdict *v)
{
	X509_STORE *own = NULL, *store = o->store;
	X509_STORE_CTX *ctx = NULL;
	char err[400];
	int good = 0;

	if (store == NULL && o->ca_file == NULL) {
		smime_judge(v, SMIME_TEMPERROR,
		            "no trust bundle (ca_file) configured");
		return 0;
	}
	if (store == NULL &&
	    (store = own = smime_trust_load(o->ca_file, err, sizeof(err))) ==
	            NULL) {
		smime_judge(v, SMIME_TEMPERROR, "trust bundle unreadable: %s",
		            err);
		return 0;
	}
	ctx = X509_STORE_CTX_new();
	if (ctx == NULL || !X509_STORE_CTX_init(ctx, store, x, untrusted))
		goto oom;
	X509_STORE_CTX_set_time(ctx, 0, o->now);
	if (X509_verify_cert(ctx) == 1) {
		*chain = X509_STORE_CTX_get1_chain(ctx);
		good = *chain != NULL;
		if (!good)
			smime_judge(v, SMIME_TEMPERROR, "out of memory");
	} else
		chain_reason(ctx, v);
	goto out;
oom:
	smime_judge(v, SMIME_TEMPERROR, "out of memory checking the chain");
out:
	ERR_clear_error();
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(own);
	return good;
}

/* " YYYY-MM-DD" of t (UTC) into buf, or "" when t is not known. */
static const char *revoked_day(time_t t, char *buf, size_t len)
{
	struct tm tm;

	buf[0] = '\0';
	if (t > 0 && gmtime_r(&t, &tm) != NULL)
		strftime(buf, len, " %Y-%m-%d", &tm);
	return buf;
}

/* Step 6: every certificate of chain but the trust anchor against the
 * imported CRLs.  1 when none is revoked; the reason says since when (the
 * CRL entry's revocation date). */
static int check_revoked(const struct smime_verify_opts *o,
                         STACK_OF(X509) *chain, struct smime_verdict *v)
{
	int n = sk_X509_num(chain);

	for (int i = 0; o->db && i < n - 1; i++) {
		struct cert_info ci;
		char err[300], day[16];
		time_t when = 0;
		int rc;

		if (cert_info_get(sk_X509_value(chain, i), &ci) != 0) {
			smime_judge(v, SMIME_TEMPERROR, "out of memory");
			return 0;
		}
		rc = db_serial_revoked_at(o->db, ci.issuer, ci.serial, &when,
		                          err, sizeof(err));
		revoked_day(when, day, sizeof(day));
		if (rc < 0)
			smime_judge(v, SMIME_TEMPERROR,
			            "revocation list unavailable: %s", err);
		else if (rc == 1 && i == 0)
			smime_judge(v, SMIME_FAIL,
			            "certificate revoked%s (serial %s of %s is "
			            "listed in an imported CRL)",
			            day, ci.serial, ci.issuer);
		else if (rc == 1)
			smime_judge(v, SMIME_FAIL,
			            "issuer certificate %s revoked%s (serial "
			            "%s "
			            "is listed in an imported CRL)",
			            ci.subject, day, ci.serial);
		cert_info_clear(&ci);
		if (rc != 0)
			return 0;
	}
	return 1;
}

/* Step 7: key usage and extended key usage allow e-mail signing. */
static int check_usage(X509 *x, struct smime_verdict *v)
{
	uint32_t flags;

	if (X509_check_purpose(x, -1, 0) != 1) {
		smime_judge(v, SMIME_FAIL,
		            "signer certificate's extensions do not parse");
		return 0;
	}
	flags = X509_get_extension_flags(x);
	if ((flags & EXFLAG_XKUSAGE) &&
	    !(X509_get_extended_key_usage(x) & (XKU_SMIME | XKU_ANYEKU))) {
		smime_judge(v, SMIME_FAIL,
		            "certificate is not for e-mail: its extended key "
		            "usage lacks emailProtection");
		return 0;
	}
	if ((flags & EXFLAG_KUSAGE) &&
	    !(X509_get_key_usage(x) &
	      (KU_DIGITAL_SIGNATURE | KU_NON_REPUDIATION))) {
		smime_judge(v, SMIME_FAIL,
		            "certificate's key usage does not allow signing");
		return 0;
	}
	return 1;
}

/* Step 8: the From address in the certificate. */
static int check_from(const struct smime_verify_opts *o, X509 *x,
                      struct smime_verdict *v)
{
	int has = o->from && cert_has_email(x, o->from);

	if (o->from == NULL) {
		smime_judge(v, SMIME_NEUTRAL,
		            "signature verified, but the message has no single "
		            "From address to compare");
		return 0;
	}
	if (!has) {
		smime_judge(v, SMIME_FAIL,
		            "signer certificate is for %s, not the From "
		            "address %s",
		            v->identifier ? v->identifier : "no address",
		            o->from);
		return 0;
	}
	return 1;
}

/* The signer's identity into v: certificate, serial, issuer, subject. */
static int signer_identity(X509 *x, struct smime_verdict *v)
{
	struct cert_info ci;

	if (!X509_up_ref(x) || cert_info_get(x, &ci) != 0)
		return -1;
	v->signer = x;
	v->serial = ci.serial;
	v->issuer = ci.issuer;
	v->subject = ci.subject;
	free(ci.fingerprint);
	return 0;
}

/* Steps 4 to 8 on a signer whose signature is good. */
static int judge_signer(const struct smime_verify_opts *o, X509 *x,
                        struct smime_verdict *v)
{
	STACK_OF(X509) *chain = NULL;
	char *root;

	/* who signed, for the stamp, whatever the verdict below: the From
	 * address when the certificate carries it, else its first one */
	v->identifier = o->from && cert_has_email(x, o->from)
	                        ? str_lower(strdup(o->from))
	                        : cert_first_email(x);
	if (!check_times(o, x, v) || !check_chain(o, x, v->certs, &chain, v))
		return 0;
	if (!check_revoked(o, chain, v) || !check_usage(x, v) ||
	    !check_from(o, x, v)) {
		sk_X509_pop_free(chain, X509_free);
		return 0;
	}
	root = cert_name_text(X509_get_subject_name(
	        sk_X509_value(chain, sk_X509_num(chain) - 1)));
	smime_judge(v, SMIME_PASS, "signature verified, chain to %s",
	            root ? root : "the trust bundle");
	free(root);
	sk_X509_pop_free(chain, X509_free);
	return 0;
}

/* Read the content through chain (CMS_dataInit's digest BIOs) to its
 * end. */
static void pump(BIO *chain)
{
	unsigned char buf[16384];

	while (BIO_read(chain, buf, sizeof(buf)) > 0)
		;
}

/* Pop and free the BIOs CMS_dataInit pushed in front of dcont. */
static void free_upto(BIO *chain, BIO *dcont)
{
	while (chain && chain != dcont) {
		BIO *next = BIO_pop(chain);
		BIO_free(chain);
		chain = next;
	}
}

/* 1 when digested holds a digest BIO for si's digest algorithm. */
static int has_digest(BIO *digested, CMS_SignerInfo *si)
{
	X509_ALGOR *alg = NULL;
	const EVP_MD *md;
	int nid;

	CMS_SignerInfo_get0_algs(si, NULL, NULL, &alg, NULL);
	nid = alg ? OBJ_obj2nid(alg->algorithm) : NID_undef;
	for (BIO *b = digested; (b = BIO_find_type(b, BIO_TYPE_MD)) != NULL;
	     b = BIO_next(b))
		if (BIO_get_md(b, &md) > 0 && md && EVP_MD_get_type(md) == nid)
			return 1;
	return 0;
}

/* The content check: through dcont (detached) or the digests already run
 * over the content (digested, opaque).  1 when it matches, 0 when not, -1
 * when the digest algorithm is unknown. */
static int content_matches(CMS_ContentInfo *cms, CMS_SignerInfo *si, BIO *dcont,
                           BIO *digested)
{
	BIO *chain;
	int good;

	if (digested) {
		if (!has_digest(digested, si))
			return -1;
		return CMS_SignerInfo_verify_content(si, digested) == 1;
	}
	chain = CMS_dataInit(cms, dcont);
	if (chain == NULL)
		return -1;
	pump(chain);
	good = CMS_SignerInfo_verify_content(si, chain) == 1;
	free_upto(chain, dcont);
	return good;
}

int smime_verify_cms(const struct smime_verify_opts *o, CMS_ContentInfo *cms,
                     BIO *dcont, BIO *digested, const int *read_failed,
                     struct smime_verdict *v)
{
	STACK_OF(CMS_SignerInfo) *sis;
	CMS_SignerInfo *si;
	X509 *signer = NULL;
	int content_ok, attrs_ok = 1;

	if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed)
		return smime_judge(v, SMIME_PERMERROR,
		                   "not a signature: the CMS content type is "
		                   "%s",
		                   OBJ_nid2ln(OBJ_obj2nid(CMS_get0_type(cms))));
	sis = CMS_get0_SignerInfos(cms);
	if (sk_CMS_SignerInfo_num(sis) < 1)
		return smime_judge(v, SMIME_PERMERROR,
		                   "signature without a signer");
	si = sk_CMS_SignerInfo_value(sis, 0);
	v->signing_time = signing_time(si);
	v->certs = CMS_get1_certs(cms);
	if (CMS_set1_signers_certs(cms, NULL, 0) < 0)
		ERR_clear_error();
	CMS_SignerInfo_get0_algs(si, NULL, &signer, NULL, NULL);
	if (signer && signer_identity(signer, v) != 0) {
		smime_judge(v, SMIME_TEMPERROR, "out of memory");
		return -1;
	}
	content_ok = content_matches(cms, si, dcont, digested);
	ERR_clear_error();
	if (read_failed && *read_failed)
		return smime_judge(v, SMIME_TEMPERROR,
		                   "cannot read the content");
	if (content_ok < 0)
		return smime_judge(v, SMIME_PERMERROR,
		                   "signature's digest algorithm is unknown");
	if (signer == NULL)
		return smime_judge(v, SMIME_FAIL,
		                   "signer certificate is not in the "
		                   "signature");
	if (CMS_signed_get_attr_count(si) >= 0)
		attrs_ok = CMS_SignerInfo_verify(si) == 1;
	if (!attrs_ok)
		return smime_judge(v, SMIME_FAIL,
		                   "signature does not verify: its signed "
		                   "attributes were altered or not signed by "
		                   "the certificate's key");
	if (!content_ok)
		return smime_judge(v, SMIME_FAIL, "body altered after signing");
	return judge_signer(o, signer, v);
}

/* Parse der (len bytes) as a CMS ContentInfo; NULL with v permerror. */
static CMS_ContentInfo *parse(BIO *der, struct smime_verdict *v)
{
	CMS_ContentInfo *cms = d2i_CMS_bio(der, NULL);

	if (cms == NULL)
		smime_judge(v, SMIME_PERMERROR,
		            "signature does not parse (not DER/BER CMS)");
	return cms;
}

int smime_verify_detached(const struct smime_verify_opts *o, BIO *content,
                          const unsigned char *sig, size_t siglen,
                          struct smime_verdict *v)
{
	return smime_verify_detached_fn(o, NULL, content, sig, siglen, v);
}

/* rd NULL: arg is the content BIO itself. */
int smime_verify_detached_fn(const struct smime_verify_opts *o,
                             smime_read_fn rd, void *arg,
                             const unsigned char *sig, size_t siglen,
                             struct smime_verdict *v)
{
	struct fn_src src = { rd, arg, 0 };
	CMS_ContentInfo *cms;
	BIO *der, *content = rd ? NULL : arg;
	int rc;

	memset(v, 0, sizeof(*v));
	if (sig == NULL || siglen == 0)
		return smime_judge(v, SMIME_PERMERROR,
		                   "signature part is empty");
	if (siglen > INT_MAX)
		return smime_judge(v, SMIME_PERMERROR,
		                   "signature part is too large");
	if (rd) {
		pthread_once(&fn_once, fn_method_make);
		content = fn_method ? BIO_new(fn_method) : NULL;
		if (content)
			BIO_set_data(content, &src);
	}
	der = BIO_new_mem_buf(sig, (int)siglen);
	if (der == NULL || content == NULL) {
		BIO_free(der);
		if (rd)
			BIO_free(content);
		smime_judge(v, SMIME_TEMPERROR, "out of memory");
		return -1;
	}
	cms = parse(der, v);
	rc = cms ? smime_verify_cms(o, cms, content, NULL, &src.failed, v) : 0;
	CMS_ContentInfo_free(cms);
	BIO_free(der);
	if (rd)
		BIO_free(content);
	ERR_clear_error();
	return rc;
}
