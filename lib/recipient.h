/*
 * recipient -- the certificates mail may be encrypted to: the one complete
 * check a recipient certificate passes before it is stored (smimectl
 * recipient import, and the milter's harvesting of signed inbound mail),
 * and the database row made from it.
 */
#ifndef SMIME_RECIPIENT_H
#define SMIME_RECIPIENT_H

#include <stddef.h>
#include <time.h>

#include <openssl/x509.h>

#include "db.h"

/*
 * Everything a recipient certificate must satisfy before it is stored: it
 * is not a CA certificate; it is inside its validity at now; it chains to
 * ca_file (cert_verify_chain, with untrusted as candidate intermediates,
 * may be NULL); it allows encryption (cert_check_encryption); it carries
 * at least one e-mail address; and (when db is not NULL) it is not listed
 * in revoked_serials.  ca_file NULL is refused.  Returns 0, or -1 with err
 * saying which check failed.
 */
int recipient_cert_check(struct db *db, X509 *x, STACK_OF(X509) *untrusted,
                         const char *ca_file, time_t now, char *err,
                         size_t errlen);

/*
 * Fill out (zeroed first; free with db_recipient_clear) from x for address
 * (lower-cased; it must be one the certificate carries) and source
 * ("import" or "harvest"): subject, issuer, serial, fingerprint, validity,
 * cert_pem, status "active", created_at now.  Returns 0, or -1 with err
 * filled (out is left empty).
 */
int recipient_from_cert(X509 *x, const char *address, const char *source,
                        struct db_recipient *out, char *err, size_t errlen);

#endif
