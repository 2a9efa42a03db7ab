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
 * A recipient in `domains` is always ENC_NEVER (line 0), whatever the rules
 * say: the city's keys are on the gateway, so an internal mailbox could not
 * read mail encrypted to it.
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

/*
 * The inbound half (issue 13).  Wave 2's lib/inbound.c asks these, in this
 * order: policy_inbound at end of headers (is the message ours to look
 * at, and what to do), policy_may_decrypt once the RecipientInfos are known
 * (may the plaintext go to every envelope recipient), then, with the
 * verdict, policy_signature_action and policy_subject_tag.
 */
struct inbound_plan {
	int inbound; /* not outbound, and to at least one internal mailbox */
	int decrypt; /* inbound and inbound_decrypt */
	int verify;  /* inbound and inbound_verify */
};

/*
 * What to do with a message of the envelope recipients rcpts (lower-case,
 * nrcpts of them; NULL entries are skipped) that is outbound or not (from
 * policy_outbound).  Inbound is mail that is not outbound to at least one
 * recipient in `domains`; decrypt and verify are then the configured keys.
 */
struct inbound_plan policy_inbound(const struct config *cfg, int outbound,
                                   char *const *rcpts, size_t nrcpts);

/*
 * Who may read it: 1 when every envelope recipient rcpts[i] (lower-case) is
 * internal (its domain in `domains`) and named[i] is non-zero (one of its
 * certificates is named in a RecipientInfo), since the MTA delivers the one
 * decrypted body to all of them.  Otherwise 0, and why (may be NULL) gets
 * the reason for the stamp and the audit row, for the first recipient that
 * fails: "x@partner.go.id is not an internal mailbox" or
 * "budi@banjarkota.go.id is not a recipient of the encrypted message"
 * ("no envelope recipient" when nrcpts is 0).
 */
int policy_may_decrypt(const struct config *cfg, char *const *rcpts,
                       const int *named, size_t nrcpts, char *why,
                       size_t whylen);

/*
 * What a signature verdict does to the transaction: ACTION_REJECT (550
 * 5.7.1 with the reason) when on_bad_signature = reject and result is
 * "fail" (the RFC 7281 word); ACTION_ACCEPT for every other result,
 * permerror and temperror included: those are stamped and delivered.
 */
enum action policy_signature_action(const struct config *cfg,
                                    const char *result);

/*
 * The Subject tag for an inbound message whose smime result (RFC 7281
 * word: pass, fail, neutral, temperror, permerror, none) is result, and that
 * was decrypted or not; NULL when the Subject stays as it is: the tag is
 * off (inbound_subject_tag = false), the configured text is "", or the mail
 * was neither signed nor decrypted.  pass: tag_pass; fail, permerror:
 * tag_fail; neutral, temperror: tag_unverified; none after decryption:
 * tag_unsigned.
 */
const char *policy_subject_tag(const struct config *cfg, const char *result,
                               int decrypted);

#endif
