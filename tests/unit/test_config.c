/* Unit tests: configuration loading and validation (lib/config.c). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "fixture.h"
#include "policy.h"
#include "tap.h"

static const char *dir;

static int load(const char *text, struct config **cfg, char *err, size_t len)
{
	char buf[4096];

	snprintf(buf, sizeof(buf), "temp_dir = \"%s\";\n%s", dir, text);
	fixture_write(fixture_path("t.conf"), buf, 0600);
	return config_load(fixture_path("t.conf"), cfg, err, len);
}

/* Load text that must be refused: 1 when it is, its error in err. */
static int refused(const char *text, char *err, size_t len)
{
	struct config *cfg = NULL;

	if (load(text, &cfg, err, len) != 0)
		return 1;
	config_free(cfg);
	snprintf(err, len, "(it loaded)");
	return 0;
}

static const struct bad_conf {
	const char *text, *want, *also, *what;
} bad_confs[] = {
	{ "domains = [ \"a.go.id\" ];\ndigst = \"sha256\";\n",
	  "t.conf:3: unknown key 'digst'", NULL,
	  "unknown key named with file:line" },
	{ "domains = [ \"a.go.id\" ];\n\non_error = \"bounce\";\n",
	  "t.conf:4: on_error: unknown action 'bounce'", NULL,
	  "bad action value named with file:line" },
	{ "domains = [ \"a.go.id\" ];\nmax_memory_body = 12;\n",
	  "t.conf:3: max_memory_body: 12 is out of range", NULL,
	  "out-of-range integer" },
	{ "domains = [ \"a.go.id\" ];\nmax_memory_body = \"big\";\n",
	  "max_memory_body: must be an integer", NULL, "wrong type" },
	{ "socket = \"inet:1@127.0.0.1\";\n", "domains: is required", NULL,
	  "missing domains is reported" },
	{ "domains = [ ];\n", "must hold at least 1", NULL,
	  "empty domains is reported" },
	{ "domains = [ \"a.go.id\" ];\ninternal_hosts = [ "
	  "\"10.0.0.0/33\" ];\n",
	  "t.conf:3: internal_hosts: entry 1 '10.0.0.0/33'", NULL, "bad CIDR" },
	{ "domains = [ \"a.go.id\" ];\ndigest = \"md5\";\n",
	  "unknown digest 'md5'", NULL, "md5 refused" },
	{ "domains = [ \"a.go.id\" ];\nsocket = \"tcp:25\";\n",
	  "t.conf:3: socket:", NULL, "bad socket" },
	{ "domains = [ \"a.go.id\" ];\nca_file = "
	  "\"/nonexistent/ca.pem\";\n",
	  "t.conf:3: ca_file: /nonexistent/ca.pem: No "
	  "such file",
	  NULL, "missing ca_file named with file:line" },
	{ "domains = [ \"a.go.id\" ]\nfoo = ;\n", "t.conf:3:", NULL,
	  "syntax error has a line" },
	{ "domains = [ \"a.go.id\" ];\nfoo = 1;\non_error = \"x\";\n",
	  "unknown key 'foo'", "on_error: unknown action",
	  "several problems are all reported" },
	{ "domains = [ \"a.go.id\" ];\n"
	  "pkcs11_tokens = ( { token = \"b\"; pin = \"/x\"; } );\n",
	  "t.conf:3: pkcs11_tokens: entry 1: unknown "
	  "key 'pin'",
	  NULL, "unknown key in a token group named with its line" },
	{ "domains = [ \"a.go.id\" ];\n"
	  "pkcs11_tokens = ( { token = \"b\"; pin_file = \"/x\"; },"
	  " { token = \"b\"; pin_file = \"/y\"; } );\n",
	  "listed twice", NULL, "a token listed twice" },
	{ "domains = [ \"a.go.id\" ];\n"
	  "pkcs11_tokens = ( { token = \"b\"; pin_file = \"pin\"; } );"
	  "\npkcs11_sessions = 0;\n",
	  "absolute path", "pkcs11_sessions",
	  "relative pin_file and 0 sessions both reported" },
	{ "domains = [ \"a.go.id\" ];\n"
	  "encrypt_cipher = \"des-ede3-cbc\";\n"
	  "encrypt_rsa_padding = \"pss\";\n",
	  "unknown cipher 'des-ede3-cbc'", "unknown padding 'pss'",
	  "unknown cipher and padding both reported" },
	{ "domains = [ \"a.go.id\" ];\n"
	  "encrypt = (\n"
	  "  { recipients = [ \"b.go.id\" ]; mode = \"always\"; }\n"
	  ");\n",
	  "t.conf:4: encrypt: rule 1: mode", "'always'",
	  "unknown mode named with its line" },
	{ "domains = [ \"a.go.id\" ];\n"
	  "encrypt = ( { recipients = [ \"b@@c\" ]; mode = "
	  "\"required\"; } );\n",
	  "entry 1 'b@@c'", NULL, "bad pattern" },
	{ "domains = [ \"a.go.id\" ];\n"
	  "encrypt = ( { recipients = [ \"go.*\" ]; mode = "
	  "\"required\"; } );\n",
	  "'go.*'", NULL, "wildcard not at the start" },
	{ "domains = [ \"a.go.id\" ];\n"
	  "encrypt = ( { mode = \"required\"; } );\n",
	  "needs a recipients list", NULL, "rule without recipients" },
	{ "domains = [ \"a.go.id\" ];\n"
	  "encrypt = ( { recipients = [ \"b.go.id\" ]; mode = "
	  "\"required\";"
	  " recipient = [ \"c\" ]; } );\n",
	  "unknown key 'recipient'", NULL, "typo in a rule" },
	{ "domains = [ \"a.go.id\" ];\nharvest = true;\n",
	  "harvest = true needs ca_file", NULL,
	  "harvest without a trust bundle" },
	{ "domains = [ \"a.go.id\" ];\nharvest = true;\n"
	  "inbound_verify = false;\n",
	  "harvest = true needs inbound_verify = true", NULL,
	  "harvest without the inbound verification" },
	{ "domains = [ \"a.go.id\" ];\nnode_name = \"mx 1\";\n",
	  "t.conf:3: node_name: 'mx 1' is not a node name", NULL,
	  "node_name with a space named with file:line" },
	{ "domains = [ \"a.go.id\" ];\nnode_name = \"\";\n",
	  "node_name: must not be empty", NULL, "an empty node_name" },
	{ "domains = [ \"a.go.id\" ];\nauthserv_id = \"mx 1\";\n",
	  "t.conf:3: authserv_id: 'mx 1' is not a valid authserv-id", NULL,
	  "authserv_id with a space named with file:line" },
	{ "domains = [ \"a.go.id\" ];\n\nauthserv_id = \"mx;x\";\n",
	  "t.conf:4: authserv_id: 'mx;x' is not", NULL,
	  "authserv_id with a ';'" },
	{ "domains = [ \"a.go.id\" ];\nauthserv_id = \"mx\\r\\nX: y\";\n",
	  "t.conf:3: authserv_id:", "not a valid authserv-id",
	  "authserv_id with CR LF" },
	{ "domains = [ \"a.go.id\" ];\nauthserv_id = \"\";\n",
	  "t.conf:3: authserv_id: '' is not", NULL, "empty authserv_id" },
	{ "domains = [ \"a.go.id\" ];\nauthserv_id = 5;\n",
	  "t.conf:3: authserv_id: must be a string", NULL,
	  "authserv_id of the wrong type" },
	{ "domains = [ \"a.go.id\" ];\non_bad_signature = \"tempfail\";\n",
	  "t.conf:3: on_bad_signature: unknown action 'tempfail' (accept or "
	  "reject)",
	  NULL, "on_bad_signature is accept or reject only" },
	{ "domains = [ \"a.go.id\" ];\non_bad_signature = \"drop\";\n",
	  "t.conf:3: on_bad_signature: unknown action 'drop'", NULL,
	  "on_bad_signature: unknown word" },
	{ "domains = [ \"a.go.id\" ];\ninbound_decrypt = \"yes\";\n"
	  "inbound_verify = 1;\n",
	  "t.conf:3: inbound_decrypt: must be true or false",
	  "t.conf:4: inbound_verify: must be true or false",
	  "inbound_decrypt and inbound_verify are booleans" },
	{ "domains = [ \"a.go.id\" ];\ninbound_subject_tag = \"on\";\n"
	  "inbound_unwrap_opaque = 0;\n",
	  "t.conf:3: inbound_subject_tag: must be true or false",
	  "t.conf:4: inbound_unwrap_opaque: must be true or false",
	  "inbound_subject_tag and inbound_unwrap_opaque are booleans" },
	{ "domains = [ \"a.go.id\" ];\n"
	  "inbound_subject_tag_pass = \"[OK]\\nBcc: x@y\";\n",
	  "t.conf:3: inbound_subject_tag_pass: must be one line", NULL,
	  "a tag with a line break" },
	{ "domains = [ \"a.go.id\" ];\ninbound_subject_tag_fail = "
	  "\"[012345678901234567890123456789012345678901234567890123456789012]"
	  "\";"
	  "\n",
	  "t.conf:3: inbound_subject_tag_fail: is 65 bytes long, at most 64",
	  NULL, "a tag longer than 64 bytes" },
	{ "domains = [ \"a.go.id\" ];\ninbound_subject_tag_unsigned = [ 1 ];\n",
	  "t.conf:3: inbound_subject_tag_unsigned: must be a string", NULL,
	  "a tag of the wrong type" },
	{ "domains = [ \"a.go.id\" ];\ninbound_subject_tags = true;\n",
	  "t.conf:3: unknown key 'inbound_subject_tags'", NULL,
	  "a typo in an inbound key" },
};

/* What the encrypt rules of the test below decide. */
static const struct mode_case {
	const char *rcpt, *sender;
	enum enc_mode want;
	const char *what;
} modes[] = {
	{ "a@disdik.jabarprov.go.id", NULL, ENC_OPPORTUNISTIC,
	  "subdomain through *.go.id" },
	{ "a@go.id", NULL, ENC_OPPORTUNISTIC,
	  "*.go.id also names go.id itself" },
	{ "a@xgo.id", NULL, ENC_NEVER, "*.go.id does not match xgo.id" },
	{ "auditor@bpk.go.id", NULL, ENC_REQUIRED,
	  "domain rule beats the wildcard listed first" },
	{ "humas@bpk.go.id", NULL, ENC_NEVER,
	  "address rule beats the domain rule" },
	{ "a@kemendagri.go.id", "sekda@banjarkota.go.id", ENC_REQUIRED,
	  "rule limited to the sender wins at equal weight" },
	{ "a@kemendagri.go.id", "andi@banjarkota.go.id", ENC_OPPORTUNISTIC,
	  "rule limited to another sender does not match" },
};

static int internal(struct config *cfg, const char *ip)
{
	struct sockaddr_in v4;
	struct sockaddr_in6 v6;

	memset(&v4, 0, sizeof(v4));
	memset(&v6, 0, sizeof(v6));
	if (inet_pton(AF_INET, ip, &v4.sin_addr) == 1) {
		v4.sin_family = AF_INET;
		return policy_client_internal(cfg, (struct sockaddr *)&v4);
	}
	inet_pton(AF_INET6, ip, &v6.sin6_addr);
	v6.sin6_family = AF_INET6;
	return policy_client_internal(cfg, (struct sockaddr *)&v6);
}

int main(void)
{
	struct config *cfg;
	char err[4096], host[256] = "";
	int rc;

	dir = fixture_dir("config");

	rc = load("domains = [ \"Banjarkota.go.id\" ];\n", &cfg, err,
	          sizeof(err));
	ok(rc == 0, "minimal config loads (%s)", rc ? err : "ok");
	if (rc == 0) {
		is_str(cfg->digest, "sha256", "digest defaults to sha256");
		ok(cfg->on_error == ACTION_TEMPFAIL,
		   "on_error defaults to tempfail");
		ok(cfg->on_no_certificate == ACTION_ACCEPT,
		   "on_no_certificate defaults to accept");
		ok(cfg->max_memory_body == 1048576, "max_memory_body default");
		ok(config_signing_domain(cfg, "banjarkota.go.id"),
		   "domains are compared lower-case");
		ok(!config_signing_domain(cfg, "example.org"),
		   "other domain is not a signing domain");
		ok(internal(cfg, "127.0.0.1"),
		   "loopback is internal by default");
		ok(internal(cfg, "::1"), "::1 is internal by default");
		ok(internal(cfg, "::ffff:127.0.0.5"),
		   "v4-mapped loopback is internal");
		ok(!internal(cfg, "192.0.2.1"), "192.0.2.1 is not internal");
		ok(cfg->inbound_decrypt && cfg->inbound_verify,
		   "inbound_decrypt and inbound_verify default to true");
		ok(!cfg->inbound_subject_tag && !cfg->inbound_unwrap_opaque,
		   "inbound_subject_tag and inbound_unwrap_opaque default to "
		   "false");
		ok(cfg->on_bad_signature == ACTION_ACCEPT,
		   "on_bad_signature defaults to accept");
		ok(gethostname(host, sizeof(host) - 1) == 0 &&
		           strcmp(cfg->authserv_id, host) == 0,
		   "authserv_id defaults to the host name (%s)",
		   cfg->authserv_id);
		ok(cfg->node_name && strcmp(cfg->node_name, host) == 0,
		   "node_name defaults to the host name (%s)", cfg->node_name);
		is_str(cfg->tag_pass, "[Terverifikasi]",
		       "inbound_subject_tag_pass default");
		is_str(cfg->tag_fail, "[Tanda tangan TIDAK SAH]",
		       "inbound_subject_tag_fail default");
		is_str(cfg->tag_unverified, "[Tanda tangan belum diperiksa]",
		       "inbound_subject_tag_unverified default");
		is_str(cfg->tag_unsigned, "[Terenkripsi, tanpa tanda tangan]",
		       "inbound_subject_tag_unsigned default");
		config_free(cfg);
	}

	rc = load("domains = [ \"a.go.id\" ];\ninbound_decrypt = false;\n"
	          "inbound_verify = false;\nauthserv_id = \"mx1.A.go.id\";\n"
	          "on_bad_signature = \"Reject\";\n"
	          "inbound_unwrap_opaque = true;\ninbound_subject_tag = true;\n"
	          "inbound_subject_tag_pass = \"[Sah]\";\n"
	          "inbound_subject_tag_fail = \"[PALSU?]\";\n"
	          "inbound_subject_tag_unverified = \"\";\n"
	          "inbound_subject_tag_unsigned = \"[Rahasia]\";\n",
	          &cfg, err, sizeof(err));
	ok(rc == 0, "every inbound key set loads (%s)", rc ? err : "ok");
	if (rc == 0) {
		ok(!cfg->inbound_decrypt && !cfg->inbound_verify,
		   "inbound_decrypt and inbound_verify = false");
		is_str(cfg->authserv_id, "mx1.A.go.id",
		       "authserv_id as written");
		ok(cfg->on_bad_signature == ACTION_REJECT,
		   "on_bad_signature = reject (any case)");
		ok(cfg->inbound_unwrap_opaque && cfg->inbound_subject_tag,
		   "inbound_unwrap_opaque and inbound_subject_tag = true");
		ok(strcmp(cfg->tag_pass, "[Sah]") == 0 &&
		           strcmp(cfg->tag_fail, "[PALSU?]") == 0 &&
		           strcmp(cfg->tag_unverified, "") == 0 &&
		           strcmp(cfg->tag_unsigned, "[Rahasia]") == 0,
		   "the four tags as written, \"\" kept as no tag");
		config_free(cfg);
	}
	ok(config_authserv_valid("mx.banjarkota.go.id") &&
	           config_authserv_valid("gw-1_x") &&
	           !config_authserv_valid("a b") &&
	           !config_authserv_valid("a;b") &&
	           !config_authserv_valid("a\r\n") &&
	           !config_authserv_valid("\"a\"") &&
	           !config_authserv_valid("a=b") &&
	           !config_authserv_valid("") && !config_authserv_valid(NULL),
	   "config_authserv_valid: host names yes; space, ';', CR LF, quote, "
	   "'=', empty, NULL no");

	rc = load("domains = [ \"a.go.id\" ];\ninternal_hosts = [ "
	          "\"10.1.0.0/16\", "
	          "\"2001:db8::/32\" ];\non_error = \"reject\";\n",
	          &cfg, err, sizeof(err));
	ok(rc == 0, "CIDR list and on_error load");
	if (rc == 0) {
		ok(internal(cfg, "10.1.200.3"),
		   "10.1.200.3 inside 10.1.0.0/16");
		ok(!internal(cfg, "10.2.0.1"), "10.2.0.1 outside 10.1.0.0/16");
		ok(internal(cfg, "2001:db8:5::1"), "IPv6 CIDR matches");
		ok(!internal(cfg, "127.0.0.1"),
		   "explicit list replaces default");
		ok(cfg->on_error == ACTION_REJECT, "on_error = reject");
		config_free(cfg);
	}

	/* configurations that must be refused, each with what it says */
	for (size_t i = 0; i < sizeof(bad_confs) / sizeof(bad_confs[0]); i++) {
		const struct bad_conf *b = &bad_confs[i];
		ok(refused(b->text, err, sizeof(err)) && strstr(err, b->want) &&
		           (b->also == NULL || strstr(err, b->also)),
		   "%s (%s)", b->what, err);
	}

	rc = config_load("/nonexistent/smime.conf", &cfg, err, sizeof(err));
	ok(rc != 0 && strstr(err, "/nonexistent/smime.conf: No such file"),
	   "missing file (%s)", err);

	/* PKCS#11 settings */
	rc = load("domains = [ \"a.go.id\" ];\n"
	          "pkcs11_module = \"/usr/lib/softhsm/libsofthsm2.so\";\n"
	          "pkcs11_tokens = ( { token = \"banjar\"; pin_file = "
	          "\"/etc/p1\"; }, { token = \"kota\"; pin_file = "
	          "\"/etc/p2\"; } );\n",
	          &cfg, err, sizeof(err));
	ok(rc == 0 && cfg->npkcs11_tokens == 2 &&
	           strcmp(cfg->pkcs11_token[1], "kota") == 0 &&
	           strcmp(cfg->pkcs11_pin_file[0], "/etc/p1") == 0 &&
	           cfg->pkcs11_sessions == 8 && cfg->pkcs11_retry == 5,
	   "pkcs11_tokens read, sessions and retry default to 8 and 5 (%s)",
	   err);
	if (rc == 0)
		config_free(cfg);

	/* encryption policy (issue 5) */
	rc = load("domains = [ \"banjarkota.go.id\" ];\n"
	          "encrypt = (\n"
	          "  { recipients = [ \"jabarprov.go.id\", \"*.go.id\" ];"
	          " mode = \"opportunistic\"; },\n"
	          "  { recipients = [ \"BPK.go.id\" ]; mode = \"required\"; "
	          "},\n"
	          "  { recipients = [ \"humas@bpk.go.id\" ]; mode = \"never\"; "
	          "},\n"
	          "  { recipients = [ \"*.go.id\" ];"
	          " senders = [ \"sekda@banjarkota.go.id\" ];"
	          " mode = \"required\"; }\n"
	          ");\n",
	          &cfg, err, sizeof(err));
	ok(rc == 0, "encrypt rules load (%s)", rc ? err : "ok");
	if (rc == 0) {
		int line = -1;
		ok(cfg->nencrypt == 4, "four rules");
		is_str(cfg->encrypt_cipher, "aes-256-cbc",
		       "encrypt_cipher defaults to aes-256-cbc");
		is_str(cfg->encrypt_rsa_padding, "pkcs1",
		       "encrypt_rsa_padding defaults to pkcs1");
		ok(!cfg->harvest, "harvest defaults to false");
		ok(policy_encrypt_mode(cfg, "a@example.org",
		                       "x@banjarkota.go.id",
		                       &line) == ENC_NEVER &&
		           line == 0,
		   "no rule: never");
		ok(policy_encrypt_mode(cfg, "a@jabarprov.go.id", NULL, &line) ==
		                   ENC_OPPORTUNISTIC &&
		           line == 4,
		   "exact domain of rule 1 (line %d)", line);
		for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
			ok(policy_encrypt_mode(cfg, modes[i].rcpt,
			                       modes[i].sender,
			                       NULL) == modes[i].want,
			   "%s", modes[i].what);
		config_free(cfg);
	}
	rc = load("domains = [ \"a.go.id\" ];\n"
	          "encrypt_cipher = \"AES-256-GCM\";\n"
	          "encrypt_rsa_padding = \"oaep\";\n",
	          &cfg, err, sizeof(err));
	ok(rc == 0 && strcmp(cfg->encrypt_cipher, "aes-256-gcm") == 0 &&
	           strcmp(cfg->encrypt_rsa_padding, "oaep") == 0,
	   "cipher and padding are read lower-case (%s)", rc ? err : "ok");
	if (rc == 0)
		config_free(cfg);

	if (fixture_cleanup() != 0)
		return 1;
	return tap_done();
}
