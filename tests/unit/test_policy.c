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

	line = -1;
	ok(policy_encrypt_mode(&cfg, "budi@banjarkota.go.id", NULL, &line) ==
	                   ENC_NEVER &&
	           line == 0,
	   "an internal recipient is never encrypted to, though *.go.id "
	   "names it (line %d)",
	   line);
	ok(policy_encrypt_mode(&cfg, "budi@sub.banjarkota.go.id", NULL, NULL) ==
	           ENC_OPPORTUNISTIC,
	   "a subdomain of a signing domain is not internal");

	/* the inbound half: which mail, and who may read it */
	{
		char *in[] = { "x@example.org", "budi@banjarkota.go.id" };
		char *ext[] = { "x@example.org", "y@partner.go.id" };
		char *both[] = { "andi@banjarkota.go.id",
			         "budi@banjarkota.go.id" };
		char *mixed[] = { "andi@banjarkota.go.id", "x@partner.go.id" };
		int named2[] = { 1, 1 }, named1[] = { 1, 0 };
		struct inbound_plan p;
		char why[256];

		cfg.inbound_decrypt = 1;
		cfg.inbound_verify = 1;
		p = policy_inbound(&cfg, 0, in, 2);
		ok(p.inbound && p.decrypt && p.verify,
		   "not outbound, one internal recipient: inbound, decrypt, "
		   "verify");
		p = policy_inbound(&cfg, 1, in, 2);
		ok(!p.inbound && !p.decrypt && !p.verify,
		   "outbound mail is never inbound");
		p = policy_inbound(&cfg, 0, ext, 2);
		ok(!p.inbound && !p.decrypt && !p.verify,
		   "no internal recipient (relayed): not inbound");
		p = policy_inbound(&cfg, 0, NULL, 0);
		ok(!p.inbound, "no recipient: not inbound");
		cfg.inbound_decrypt = 0;
		p = policy_inbound(&cfg, 0, in, 2);
		ok(p.inbound && !p.decrypt && p.verify,
		   "inbound_decrypt = false: verify only");
		cfg.inbound_decrypt = 1;
		cfg.inbound_verify = 0;
		p = policy_inbound(&cfg, 0, in, 2);
		ok(p.inbound && p.decrypt && !p.verify,
		   "inbound_verify = false: decrypt only");

		ok(policy_may_decrypt(&cfg, both, named2, 2, why,
		                      sizeof(why)) &&
		           why[0] == '\0',
		   "every recipient internal and named: decrypt");
		ok(!policy_may_decrypt(&cfg, both, named1, 2, why,
		                       sizeof(why)) &&
		           strcmp(why,
		                  "budi@banjarkota.go.id is not a "
		                  "recipient of the encrypted message") == 0,
		   "one internal recipient not named: %s", why);
		ok(!policy_may_decrypt(&cfg, mixed, named2, 2, why,
		                       sizeof(why)) &&
		           strcmp(why, "x@partner.go.id is not an internal "
		                       "mailbox") == 0,
		   "an external recipient, though named: %s", why);
		ok(!policy_may_decrypt(&cfg, both, NULL, 2, NULL, 0),
		   "no named list, no reason buffer: not decrypted");
		ok(!policy_may_decrypt(&cfg, both, named2, 0, why,
		                       sizeof(why)) &&
		           strcmp(why, "no envelope recipient") == 0,
		   "no envelope recipient: not decrypted");
	}

	/* the verdict: reject a bad signature? which Subject tag? */
	cfg.on_bad_signature = ACTION_ACCEPT;
	ok(policy_signature_action(&cfg, "fail") == ACTION_ACCEPT,
	   "on_bad_signature = accept: a failed signature is delivered");
	cfg.on_bad_signature = ACTION_REJECT;
	ok(policy_signature_action(&cfg, "FAIL") == ACTION_REJECT &&
	           policy_signature_action(&cfg, "permerror") ==
	                   ACTION_ACCEPT &&
	           policy_signature_action(&cfg, "temperror") ==
	                   ACTION_ACCEPT &&
	           policy_signature_action(&cfg, "pass") == ACTION_ACCEPT &&
	           policy_signature_action(&cfg, NULL) == ACTION_ACCEPT,
	   "on_bad_signature = reject: fail only is rejected");
	{
		char pass[] = "[Terverifikasi]", fail[] = "[TIDAK SAH]";
		char unv[] = "", uns[] = "[Terenkripsi]";

		cfg.tag_pass = pass;
		cfg.tag_fail = fail;
		cfg.tag_unverified = unv;
		cfg.tag_unsigned = uns;
		cfg.inbound_subject_tag = 0;
		ok(policy_subject_tag(&cfg, "pass", 1) == NULL,
		   "inbound_subject_tag = false: no tag");
		cfg.inbound_subject_tag = 1;
		ok(policy_subject_tag(&cfg, "pass", 0) == pass &&
		           policy_subject_tag(&cfg, "fail", 0) == fail &&
		           policy_subject_tag(&cfg, "permerror", 1) == fail,
		   "pass, fail and permerror tags");
		ok(policy_subject_tag(&cfg, "neutral", 0) == NULL &&
		           policy_subject_tag(&cfg, "temperror", 0) == NULL,
		   "an empty tag text is no tag");
		ok(policy_subject_tag(&cfg, "none", 1) == uns &&
		           policy_subject_tag(&cfg, "none", 0) == NULL &&
		           policy_subject_tag(&cfg, NULL, 1) == NULL,
		   "unsigned: tagged only when it was decrypted");
	}

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
