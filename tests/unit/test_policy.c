/* Unit tests: lib/policy.c, what is decided before any crypto.  The
 * configuration is built by hand: policy only reads it. */
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "policy.h"
#include "tap.h"

/* policy_client_internal for a numeric address of either family. */
static int internal_ip(const struct config *cfg, const char *ip)
{
	struct addrinfo hints, *ai = NULL;
	int r;

	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_NUMERICHOST;
	if (getaddrinfo(ip, NULL, &hints, &ai) != 0 || ai == NULL)
		return -1;
	r = policy_client_internal(cfg, ai->ai_addr);
	freeaddrinfo(ai);
	return r;
}

int main(void)
{
	struct cidr nets[2];
	char *domains[] = { "banjarkota.go.id" };
	char *r1[] = { "*.go.id" }, *r2[] = { "bpk.go.id" };
	char *r3[] = { "auditor@bpk.go.id" },
	     *s3[] = { "andi@banjarkota.go.id" };
	struct encrypt_rule rules[3] = {
		{ r1, 1, NULL, 0, ENC_OPPORTUNISTIC, 10 },
		{ r2, 1, NULL, 0, ENC_REQUIRED, 11 },
		{ r3, 1, s3, 1, ENC_NEVER, 12 },
	};
	struct config cfg;
	struct sockaddr_un un;
	const char *note;
	int line;

	memset(&cfg, 0, sizeof(cfg));
	cidr_parse("10.1.0.0/16", &nets[0]);
	cidr_parse("2001:db8::/32", &nets[1]);
	cfg.internal = nets;
	cfg.ninternal = 2;
	cfg.domains = domains;
	cfg.ndomains = 1;
	cfg.encrypt = rules;
	cfg.nencrypt = 3;
	cfg.on_error = ACTION_ACCEPT;
	cfg.on_no_certificate = ACTION_REJECT;

	/* who is internal: decided once, here */
	ok(policy_client_internal(&cfg, NULL),
	   "no client address (local submission) is internal");
	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	ok(policy_client_internal(&cfg, (struct sockaddr *)&un),
	   "a unix-socket client is internal");
	ok(internal_ip(&cfg, "10.1.2.3") == 1, "10.1.2.3 inside 10.1.0.0/16");
	ok(internal_ip(&cfg, "10.2.0.1") == 0, "10.2.0.1 is outside");
	ok(internal_ip(&cfg, "::ffff:10.1.9.9") == 1,
	   "a v4-mapped IPv6 address matches the IPv4 block");
	ok(internal_ip(&cfg, "2001:db8:1::5") == 1, "an IPv6 block matches");
	ok(internal_ip(&cfg, "192.0.2.1") == 0, "192.0.2.1 is outside");
	cfg.ninternal = 0;
	ok(policy_client_internal(&cfg, NULL),
	   "no address is internal even without internal_hosts");
	cfg.ninternal = 2;

	ok(policy_outbound(1, 0) && policy_outbound(0, 1) &&
	           policy_outbound(1, 1),
	   "internal or authenticated is outbound");
	ok(!policy_outbound(0, 0), "external and unauthenticated is not");

	ok(policy_signing_address(&cfg, "andi@banjarkota.go.id"),
	   "a signing domain address");
	ok(!policy_signing_address(&cfg, "a@example.org"), "a foreign address");
	ok(!policy_signing_address(&cfg, NULL), "no address");

	/* encryption modes: the most specific rule wins */
	ok(policy_encrypt_mode(&cfg, "x@jabarprov.go.id", NULL, &line) ==
	                   ENC_OPPORTUNISTIC &&
	           line == 10,
	   "wildcard rule (line %d)", line);
	ok(policy_encrypt_mode(&cfg, "humas@bpk.go.id", NULL, &line) ==
	                   ENC_REQUIRED &&
	           line == 11,
	   "a domain before a wildcard (line %d)", line);
	ok(policy_encrypt_mode(&cfg, "auditor@bpk.go.id",
	                       "andi@banjarkota.go.id", &line) == ENC_NEVER &&
	           line == 12,
	   "an address limited to a sender (line %d)", line);
	ok(policy_encrypt_mode(&cfg, "auditor@bpk.go.id", NULL, &line) ==
	           ENC_REQUIRED,
	   "a rule limited to senders does not match without a sender");
	ok(policy_encrypt_mode(&cfg, "a@example.org", NULL, &line) ==
	                   ENC_NEVER &&
	           line == 0,
	   "no rule: never");

	/* actions */
	ok(policy_action(&cfg, POLICY_NO_CERTIFICATE, 0, 0, &note) ==
	                   ACTION_REJECT &&
	           note == NULL,
	   "no certificate: on_no_certificate");
	ok(policy_action(&cfg, POLICY_REFUSED, 0, 0, NULL) == ACTION_REJECT,
	   "refused by the encryption policy: reject");
	ok(policy_action(&cfg, POLICY_ERROR, 0, 0, &note) == ACTION_ACCEPT &&
	           note == NULL,
	   "an error: on_error (accept)");
	ok(policy_action(&cfg, POLICY_ERROR, 1, 0, &note) == ACTION_TEMPFAIL &&
	           note && strstr(note, "encryption is required"),
	   "accept does not apply when encryption is required");
	ok(policy_action(&cfg, POLICY_ERROR, 0, 1, &note) == ACTION_TEMPFAIL &&
	           note && strstr(note, "already being handed"),
	   "accept does not apply once part of a new body went out");
	ok(policy_error_action(ACTION_REJECT, 1, 1, &note) == ACTION_REJECT &&
	           note == NULL,
	   "reject stays reject");

	/* content left alone, encrypted by the client, worth a harvest */
	is_str(policy_protected_content("multipart/signed; "
	                                "protocol=\"application/"
	                                "pkcs7-signature\"; micalg=sha-256"),
	       "already S/MIME signed", "an S/MIME signed message");
	is_str(policy_protected_content("multipart/signed; protocol="
	                                "\"application/pgp-signature\""),
	       "PGP/MIME signed message", "a PGP/MIME signed message");
	ok(policy_protected_content("text/plain") == NULL &&
	           policy_protected_content(NULL) == NULL,
	   "plain text may be signed");
	ok(policy_client_encrypted("application/pkcs7-mime; "
	                           "smime-type=enveloped-data"),
	   "S/MIME enveloped data is encrypted already");
	ok(!policy_client_encrypted("application/pkcs7-mime; "
	                            "smime-type=signed-data"),
	   "S/MIME signed data is not");
	ok(policy_harvestable("multipart/signed; protocol=\"application/"
	                      "pkcs7-signature\""),
	   "an S/MIME signed message is worth a harvest");
	ok(!policy_harvestable("text/plain") && !policy_harvestable(NULL),
	   "plain text is not");
	return tap_done();
}
