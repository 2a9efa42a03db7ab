/* recipient -- checking and storing recipient certificates (see .h). */
#include "recipient.h"
#include "certstore.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

int recipient_cert_check(struct db *db, X509 *x, STACK_OF(X509) *untrusted,
                         const char *ca_file, time_t now, char *err,
                         size_t errlen)
{
	struct cert_info ci;
	char **emails;
	int rc;

	if (x == NULL)
		return seterr(err, errlen, "no certificate");
	if (ca_file == NULL)
		return seterr(err, errlen,
		              "no trust bundle: set ca_file in the "
		              "configuration "
		              "to check recipient certificates");
	if (X509_check_ca(x) != 0) {
		ERR_clear_error();
		return seterr(err, errlen,
		              "it is a CA certificate, not a person's or a "
		              "mailbox's");
	}
	if (cert_info_get(x, &ci) != 0)
		return seterr(err, errlen,
		              "cannot read the certificate's details");
	if (validity_check(ci.not_before, ci.not_after, now, err, errlen) !=
	            0 ||
	    cert_verify_chain(x, untrusted, ca_file, now, err, errlen) != 0 ||
	    cert_check_encryption(x, err, errlen) != 0) {
		cert_info_clear(&ci);
		return -1;
	}
	emails = cert_emails(x);
	if (emails == NULL) {
		cert_info_clear(&ci);
		return seterr(err, errlen, "out of memory");
	}
	rc = emails[0] == NULL ? -1 : 0;
	cert_emails_free(emails);
	if (rc != 0) {
		cert_info_clear(&ci);
		return seterr(err, errlen,
		              "it carries no e-mail address (neither "
		              "subjectAltName rfc822Name nor subject "
		              "emailAddress)");
	}
	if (db != NULL) {
		rc = db_serial_revoked(db, ci.issuer, ci.serial, err, errlen);
		if (rc == 1)
			seterr(err, errlen,
			       "it is revoked (serial %s listed in an imported "
			       "CRL of %s)",
			       ci.serial, ci.issuer);
		if (rc != 0) {
			cert_info_clear(&ci);
			return -1;
		}
	}
	cert_info_clear(&ci);
	return 0;
}

int recipient_from_cert(X509 *x, const char *address, const char *source,
                        struct db_recipient *out, char *err, size_t errlen)
{
	struct cert_info ci;

	memset(out, 0, sizeof(*out));
	if (x == NULL || address == NULL || source == NULL)
		return seterr(err, errlen,
		              "recipient_from_cert: certificate, address and "
		              "source are needed");
	if (strcmp(source, "import") != 0 && strcmp(source, "harvest") != 0)
		return seterr(err, errlen,
		              "recipient source must be import or harvest, not "
		              "'%s'",
		              source);
	if (!cert_has_email(x, address))
		return seterr(err, errlen,
		              "the certificate does not carry %s (neither "
		              "subjectAltName rfc822Name nor subject "
		              "emailAddress)",
		              address);
	if (cert_info_get(x, &ci) != 0)
		return seterr(err, errlen,
		              "cannot read the certificate's details");
	out->address = str_lower(strdup(address));
	out->subject = ci.subject;
	out->issuer = ci.issuer;
	out->serial = ci.serial;
	out->fingerprint = ci.fingerprint;
	out->not_before = ci.not_before;
	out->not_after = ci.not_after;
	out->status = strdup("active");
	out->source = strdup(source);
	out->cert_pem = cert_to_pem(x);
	out->created_at = time(NULL);
	if (out->address == NULL || out->status == NULL ||
	    out->source == NULL || out->cert_pem == NULL) {
		db_recipient_clear(out);
		return seterr(err, errlen, "out of memory");
	}
	return 0;
}
