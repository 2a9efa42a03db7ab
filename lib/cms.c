/* cms -- detached SignedData from a streamed digest (see cms.h). */
#include "cms.h"
#include "util.h"

#include <string.h>

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

EVP_MD *cms_digest_fetch(const char *name)
{
	if (!str_ieq(name, "sha256") && !str_ieq(name, "sha384") &&
	    !str_ieq(name, "sha512"))
		return NULL;
	return EVP_MD_fetch(NULL, name, NULL);
}

const char *cms_micalg(const EVP_MD *md)
{
	switch (EVP_MD_get_type(md)) {
	case NID_sha384:
		return "sha-384";
	case NID_sha512:
		return "sha-512";
	default:
		return "sha-256";
	}
}

static int add_smimecap(CMS_SignerInfo *si)
{
	STACK_OF(X509_ALGOR) *caps = sk_X509_ALGOR_new_null();
	int ok;

	ok = caps != NULL &&
	     CMS_add_simple_smimecap(&caps, NID_aes_256_gcm, -1) &&
	     CMS_add_simple_smimecap(&caps, NID_aes_256_cbc, -1) &&
	     CMS_add_simple_smimecap(&caps, NID_aes_128_cbc, -1) &&
	     CMS_add_smimecap(si, caps);
	sk_X509_ALGOR_pop_free(caps, X509_ALGOR_free);
	return ok;
}

int cms_sign_digest(X509 *cert, STACK_OF(X509) *chain, EVP_PKEY *key,
                    const EVP_MD *md, const unsigned char *dgst,
                    size_t dgstlen, time_t signing_time, unsigned char **der,
                    size_t *derlen, char *err, size_t errlen)
{
	const unsigned int flags =
	    CMS_DETACHED | CMS_BINARY | CMS_PARTIAL | CMS_NOSMIMECAP;
	CMS_ContentInfo *cms;
	CMS_SignerInfo *si;
	ASN1_TIME *when = NULL;
	int len, rc = -1;
	unsigned char *p;

	*der = NULL;
	*derlen = 0;
	cms = CMS_sign(NULL, NULL, NULL, NULL, flags);
	if (cms == NULL) {
		seterr_ssl(err, errlen, "CMS_sign");
		return -1;
	}
	si = CMS_add1_signer(cms, cert, key, md, flags);
	if (si == NULL) {
		seterr_ssl(err, errlen, "cannot add signer");
		goto out;
	}
	for (int i = 0; chain && i < sk_X509_num(chain); i++)
		if (!CMS_add1_cert(cms, sk_X509_value(chain, i))) {
			seterr_ssl(err, errlen, "cannot add chain certificate");
			goto out;
		}
	if (!add_smimecap(si)) {
		seterr_ssl(err, errlen, "cannot add SMIMECapabilities");
		goto out;
	}
	when = ASN1_TIME_adj(NULL, signing_time ? signing_time : time(NULL),
	                     0, 0);
	if (when == NULL ||
	    !CMS_signed_add1_attr_by_NID(si, NID_pkcs9_signingTime,
	                                 when->type, when, -1) ||
	    !CMS_signed_add1_attr_by_NID(si, NID_pkcs9_contentType,
	                                 V_ASN1_OBJECT, OBJ_nid2obj(NID_pkcs7_data),
	                                 -1) ||
	    !CMS_signed_add1_attr_by_NID(si, NID_pkcs9_messageDigest,
	                                 V_ASN1_OCTET_STRING, dgst,
	                                 (int)dgstlen)) {
		seterr_ssl(err, errlen, "cannot add signed attributes");
		goto out;
	}
	if (!CMS_SignerInfo_sign(si)) {
		seterr_ssl(err, errlen, "signing failed");
		goto out;
	}
	len = i2d_CMS_ContentInfo(cms, NULL);
	if (len <= 0 || (*der = OPENSSL_malloc((size_t)len)) == NULL) {
		seterr_ssl(err, errlen, "cannot encode SignedData");
		goto out;
	}
	p = *der;
	i2d_CMS_ContentInfo(cms, &p);
	*derlen = (size_t)len;
	rc = 0;
out:
	ASN1_TIME_free(when);
	CMS_ContentInfo_free(cms);
	return rc;
}
