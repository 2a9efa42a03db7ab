/*
 * harvest -- learn a partner's encryption certificate from the signer of
 * inbound mail whose signature verified (issue 13: the inbound verify
 * path hands over its verdict's signer and certificates; nothing here
 * verifies a signature).
 */
#ifndef SMIME_HARVEST_H
#define SMIME_HARVEST_H

#include <openssl/x509.h>

#include "snapshot.h"

/* Called for every certificate newly stored. */
typedef void (*harvest_fn)(void *arg, const char *address, const char *serial,
                           X509 *cert);

/*
 * Store signer (whose signature verified; certs: the certificates the
 * signature carried, for the chain) in s's database as the recipient
 * certificate of each address it carries, when it carries the From address
 * from and qualifies as a recipient certificate (chain to ca_file, usage,
 * validity, not revoked).  A certificate the snapshot already uses for from
 * costs no database work.  found(arg, ...) (may be NULL) is called for each
 * one stored.  *why gets the reason when nothing was stored.  Returns the
 * number stored, or -1 with why filled on an error worth logging.
 */
int harvest_signer(const struct snapshot *s, const char *from, X509 *signer,
                   STACK_OF(X509) *certs, harvest_fn found, void *arg,
                   char *why, size_t whylen);

#endif
