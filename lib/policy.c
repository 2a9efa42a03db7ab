/* policy -- decisions made before any crypto (see policy.h). */
#include "policy.h"
#include "mime.h"
#include "util.h"

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int cidr_match(const struct cidr *c, int family, const unsigned char *a)
{
	int full = c->bits / 8, rest = c->bits % 8;

	if (c->family != family)
		return 0;
	if (memcmp(c->addr, a, (size_t)full) != 0)
		return 0;
	if (rest) {
		unsigned char mask = (unsigned char)(0xff << (8 - rest));
		if ((c->addr[full] & mask) != (a[full] & mask))
			return 0;
	}
	return 1;
}

int policy_client_internal(const struct config *cfg, const struct sockaddr *sa)
{
	const unsigned char *a;
	int family;
	static const unsigned char v4mapped[12] = { 0, 0, 0, 0, 0,    0,
		                                    0, 0, 0, 0, 0xff, 0xff };

	if (sa == NULL)
		return 1; /* local submission: no client address */
	if (sa->sa_family == AF_INET) {
		family = AF_INET;
		a = (const unsigned char *)&((const struct sockaddr_in *)sa)
		            ->sin_addr;
	} else if (sa->sa_family == AF_INET6) {
		family = AF_INET6;
		a = (const unsigned char *)&((const struct sockaddr_in6 *)sa)
		            ->sin6_addr;
		if (memcmp(a, v4mapped, 12) == 0) {
			family = AF_INET;
			a += 12;
		}
	} else if (sa->sa_family == AF_UNIX) {
		return 1; /* local submission through a unix socket */
	} else
		return 0;
	for (size_t i = 0; i < cfg->ninternal; i++)
		if (cidr_match(&cfg->internal[i], family, a))
			return 1;
	return 0;
}

int policy_outbound(int internal, int authenticated)
{
	return internal || authenticated;
}

int policy_signing_address(const struct config *cfg, const char *addr)
{
	return addr != NULL && config_signing_domain(cfg, addr_domain(addr));
}

/* How specifically pattern p names addr (lower-case); 0: no match. */
static long pattern_weight(const char *p, const char *addr)
{
	const char *dom = addr_domain(addr);
	size_t dl = strlen(dom);

	if (strcmp(p, "*") == 0)
		return 1;
	if (strchr(p, '@'))
		return strcmp(p, addr) == 0 ? 4000000L : 0;
	if (p[0] == '*') {
		const char *suf = p + 2; /* after "*." */
		size_t sl = strlen(suf);
		if (strcmp(dom, suf) == 0 ||
		    (dl > sl && dom[dl - sl - 1] == '.' &&
		     strcmp(dom + dl - sl, suf) == 0))
			return 1000L + (long)sl;
		return 0;
	}
	return strcmp(p, dom) == 0 ? 2000000L : 0;
}

static long list_weight(char **pats, size_t n, const char *addr)
{
	long best = 0;

	for (size_t i = 0; addr && i < n; i++) {
		long w = pattern_weight(pats[i], addr);
		if (w > best)
			best = w;
	}
	return best;
}

enum enc_mode policy_encrypt_mode(const struct config *cfg, const char *rcpt,
                                  const char *sender, int *line)
{
	const struct encrypt_rule *best = NULL;
	long bestw = 0;

	if (policy_signing_address(cfg, rcpt)) {
		if (line)
			*line = 0;
		return ENC_NEVER; /* internal: its key is on the gateway */
	}
	for (size_t i = 0; i < cfg->nencrypt; i++) {
		const struct encrypt_rule *r = &cfg->encrypt[i];
		long w = list_weight(r->recipients, r->nrecipients, rcpt);
		if (w == 0)
			continue;
		w *= 2;
		if (r->nsenders > 0) {
			if (list_weight(r->senders, r->nsenders, sender) == 0)
				continue;
			w++;
		}
		if (w > bestw) {
			bestw = w;
			best = r;
		}
	}
	if (line)
		*line = best ? best->line : 0;
	return best ? best->mode : ENC_NEVER;
}

enum action policy_error_action(enum action configured, int required,
                                int body_sent, const char **note)
{
	if (note)
		*note = NULL;
	if (configured != ACTION_ACCEPT)
		return configured;
	if (body_sent) {
		/* accepting now would deliver a half-replaced body */
		if (note)
			*note = "the new body was already being handed to the "
			        "MTA, so on_error = accept does not apply";
		return ACTION_TEMPFAIL;
	}
	if (!required)
		return configured;
	if (note)
		*note = "encryption is required for a recipient, so on_error = "
		        "accept does not apply";
	return ACTION_TEMPFAIL;
}

enum action policy_action(const struct config *cfg, enum policy_case what,
                          int required, int body_sent, const char **note)
{
	if (note)
		*note = NULL;
	switch (what) {
	case POLICY_NO_CERTIFICATE:
		return cfg->on_no_certificate;
	case POLICY_REFUSED:
		return ACTION_REJECT;
	default:
		return policy_error_action(cfg->on_error, required, body_sent,
		                           note);
	}
}

const char *policy_protected_content(const char *ctype)
{
	struct mime_ct ct;

	if (ctype == NULL)
		return NULL;
	mime_ct_parse(ctype, &ct);
	if (strcmp(ct.type, "multipart") == 0) {
		if (strcmp(ct.subtype, "signed") == 0)
			return strstr(ct.protocol, "pgp")
			               ? "PGP/MIME signed message"
			               : "already S/MIME signed";
		if (strcmp(ct.subtype, "encrypted") == 0)
			return "PGP/MIME encrypted message";
	}
	if (strcmp(ct.type, "application") == 0 &&
	    (strcmp(ct.subtype, "pkcs7-mime") == 0 ||
	     strcmp(ct.subtype, "x-pkcs7-mime") == 0 ||
	     strcmp(ct.subtype, "pkcs7-signature") == 0 ||
	     strcmp(ct.subtype, "x-pkcs7-signature") == 0))
		return "already S/MIME signed or encrypted";
	if (strcmp(ct.type, "application") == 0 &&
	    strncmp(ct.subtype, "pgp", 3) == 0)
		return "PGP message";
	return NULL;
}

int policy_client_encrypted(const char *ctype)
{
	struct mime_ct ct;

	if (ctype == NULL)
		return 0;
	mime_ct_parse(ctype, &ct);
	if (strcmp(ct.type, "multipart") == 0 &&
	    strcmp(ct.subtype, "encrypted") == 0)
		return 1;
	if (strcmp(ct.type, "application") == 0 &&
	    strcmp(ct.subtype, "pgp-encrypted") == 0)
		return 1;
	return strcmp(ct.type, "application") == 0 &&
	       (strcmp(ct.subtype, "pkcs7-mime") == 0 ||
	        strcmp(ct.subtype, "x-pkcs7-mime") == 0) &&
	       strcasestr(ct.smime_type, "enveloped") != NULL;
}

int policy_harvestable(const char *ctype)
{
	struct mime_ct ct;

	if (ctype == NULL)
		return 0;
	mime_ct_parse(ctype, &ct);
	if (strcmp(ct.type, "multipart") == 0 &&
	    strcmp(ct.subtype, "signed") == 0)
		return strstr(ct.protocol, "pkcs7-signature") != NULL;
	return strcmp(ct.type, "application") == 0 &&
	       (strcmp(ct.subtype, "pkcs7-mime") == 0 ||
	        strcmp(ct.subtype, "x-pkcs7-mime") == 0) &&
	       strcasestr(ct.smime_type, "signed-data") != NULL;
}

struct inbound_plan policy_inbound(const struct config *cfg, int outbound,
                                   char *const *rcpts, size_t nrcpts)
{
	struct inbound_plan p = { 0, 0, 0 };

	for (size_t i = 0; !outbound && i < nrcpts && !p.inbound; i++)
		p.inbound = policy_signing_address(cfg, rcpts[i]);
	p.decrypt = p.inbound && cfg->inbound_decrypt;
	p.verify = p.inbound && cfg->inbound_verify;
	return p;
}

int policy_may_decrypt(const struct config *cfg, char *const *rcpts,
                       const int *named, size_t nrcpts, char *why,
                       size_t whylen)
{
	char dummy[1];

	if (why == NULL || whylen == 0) {
		why = dummy;
		whylen = sizeof(dummy);
	}
	why[0] = '\0';
	if (nrcpts == 0) {
		snprintf(why, whylen, "no envelope recipient");
		return 0;
	}
	for (size_t i = 0; i < nrcpts; i++) {
		const char *r = rcpts[i] ? rcpts[i] : "(none)";
		if (!policy_signing_address(cfg, rcpts[i])) {
			snprintf(why, whylen, "%s is not an internal mailbox",
			         r);
			return 0;
		}
		if (named == NULL || !named[i]) {
			snprintf(why, whylen,
			         "%s is not a recipient of the encrypted "
			         "message",
			         r);
			return 0;
		}
	}
	return 1;
}

enum action policy_signature_action(const struct config *cfg,
                                    const char *result)
{
	if (result && strcasecmp(result, "fail") == 0 &&
	    cfg->on_bad_signature == ACTION_REJECT)
		return ACTION_REJECT;
	return ACTION_ACCEPT;
}

const char *policy_subject_tag(const struct config *cfg, const char *result,
                               int decrypted)
{
	const char *tag = NULL;

	if (!cfg->inbound_subject_tag || result == NULL)
		return NULL;
	if (strcasecmp(result, "pass") == 0)
		tag = cfg->tag_pass;
	else if (strcasecmp(result, "fail") == 0 ||
	         strcasecmp(result, "permerror") == 0)
		tag = cfg->tag_fail;
	else if (strcasecmp(result, "neutral") == 0 ||
	         strcasecmp(result, "temperror") == 0)
		tag = cfg->tag_unverified;
	else if (strcasecmp(result, "none") == 0 && decrypted)
		tag = cfg->tag_unsigned;
	return tag && *tag ? tag : NULL;
}
