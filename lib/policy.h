/*
 * policy -- what is decided about a message before any crypto: whether the
 * client is internal and the mail outbound, whether the From domain signs,
 * the encryption mode of a recipient, and which configured action applies
 * when a message cannot be signed.  Pure functions of the configuration and
 * the facts given; message.c asks them, milter/ only turns the answer into
 * a reply.
 */
#ifndef SMIME_POLICY_H
#define SMIME_POLICY_H

#include <sys/socket.h>

#include "config.h"

/*
 * 1 when a client at sa is internal: inside internal_hosts, on a unix
 * socket, or with no address at all (sa NULL: the MTA's own local
 * submission, such as Postfix's non_smtpd_milters for sendmail(1) and
 * pickup, which hand the milter no client address).
 */
int policy_client_internal(const struct config *cfg, const struct sockaddr *sa);

/* 1 when mail from such a client is outbound: internal or authenticated. */
int policy_outbound(int internal, int authenticated);

/* 1 when addr's domain (addr lower-case) is one of the signing domains. */
int policy_signing_address(const struct config *cfg, const char *addr);

/*
 * Encryption mode for mail from sender (lower-case, may be NULL: rules
 * limited to senders then do not match) to rcpt (lower-case).  The most
 * specific matching rule decides: an address before a domain, a domain
 * before a longer-suffix wildcard before a shorter one before "*"; at equal
 * weight a rule limited to senders wins, then the earlier rule.  *line (may
 * be NULL) gets the rule's line, 0 when no rule matched (ENC_NEVER).
 */
enum enc_mode policy_encrypt_mode(const struct config *cfg, const char *rcpt,
                                  const char *sender, int *line);

/*
 * Why a message whose top-level Content-Type is ctype (may be NULL) is
 * left alone: "already S/MIME signed", "PGP/MIME encrypted message"...;
 * NULL when it may be signed.
 */
const char *policy_protected_content(const char *ctype);

/* 1 when ctype is content the client encrypted itself (S/MIME enveloped,
 * PGP): a rule that requires encryption is then met already. */
int policy_client_encrypted(const char *ctype);

/* 1 when inbound mail of top-level Content-Type ctype is S/MIME signed,
 * so worth a certificate harvest. */
int policy_harvestable(const char *ctype);

/* What went wrong with a message, for policy_action. */
enum policy_case {
	POLICY_NO_CERTIFICATE, /* signing domain, no usable certificate */
	POLICY_ERROR,          /* the filter cannot do its job */
	POLICY_REFUSED         /* the encryption policy refuses it */
};

/*
 * The action for what: on_no_certificate, reject, or on_error, except that
 * an "accept" from on_error becomes "tempfail" when required (a recipient's
 * rule requires encryption: the mail would leave in clear) or body_sent
 * (part of a new body went to the MTA: accepting would deliver it half
 * replaced).  *note (may be NULL) then gets a static text saying why,
 * otherwise NULL.
 */
enum action policy_action(const struct config *cfg, enum policy_case what,
                          int required, int body_sent, const char **note);

/* policy_action's on_error rule for a given configured action. */
enum action policy_error_action(enum action configured, int required,
                                int body_sent, const char **note);

#endif
