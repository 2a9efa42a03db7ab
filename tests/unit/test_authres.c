/*
 * Unit tests: lib/authres.c -- the Authentication-Results value of RFC 8601
 * with the smime method of RFC 7281 (exact text, quoting, hostile input,
 * folding) and authres_is_ours on the forms real servers write.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authres.h"
#include "tap.h"

#define ID "mx.banjarkota.go.id"

static struct smime_verdict verdict(enum smime_result r, const char *reason,
                                    const char *ident, const char *serial,
                                    const char *issuer)
{
	struct smime_verdict v;

	memset(&v, 0, sizeof(v));
	v.result = r;
	snprintf(v.reason, sizeof(v.reason), "%s", reason);
	v.identifier = (char *)ident;
	v.serial = (char *)serial;
	v.issuer = (char *)issuer;
	return v;
}

/* is_str on a malloc'd result, then free it. */
#define is_fmt(got, want, ...)                  \
	do {                                    \
		char *g2_ = (got);              \
		is_str(g2_, want, __VA_ARGS__); \
		free(g2_);                      \
	} while (0)

static void test_format(void)
{
	struct smime_verdict v =
	        verdict(SMIME_PASS, "signature verified, chain to CN=BSrE Root",
	                "mitra@jabarprov.go.id", "1005", "CN=BSrE Root,O=BSrE");

	is_fmt(authres_format(ID, &v, "mitra@jabarprov.go.id", NULL, NULL),
	       ID "; smime=pass (signature verified, chain to CN=BSrE Root) "
	          "header.from=mitra@jabarprov.go.id "
	          "body.smime-identifier=mitra@jabarprov.go.id "
	          "body.smime-serial=1005 "
	          "body.smime-issuer=\"CN=BSrE Root,O=BSrE\"",
	       "pass: the example of the issue, issuer quoted");
	is_fmt(authres_format(ID, &v, NULL,
	                      "decrypted for andi@banjarkota.go.id, "
	                      "certificate 1A2B, AES-256-GCM",
	                      NULL),
	       ID "; smime=pass (signature verified, chain to CN=BSrE Root) "
	          "(decrypted for andi@banjarkota.go.id, certificate 1A2B, "
	          "AES-256-GCM) body.smime-identifier=mitra@jabarprov.go.id "
	          "body.smime-serial=1005 "
	          "body.smime-issuer=\"CN=BSrE Root,O=BSrE\"",
	       "decryption as a second comment; no header.from when NULL");
	is_fmt(authres_format(ID, NULL, "x@y.id",
	                      "not decrypted: budi@banjarkota.go.id is not a "
	                      "recipient of the CMS",
	                      NULL),
	       ID "; smime=none (not signed) (not decrypted: "
	          "budi@banjarkota.go.id is not a recipient of the CMS) "
	          "header.from=x@y.id",
	       "no verdict: smime=none (not signed)");
	v = verdict(SMIME_PERMERROR, "signature does not parse", NULL, NULL,
	            NULL);
	is_fmt(authres_format(ID, &v, NULL, NULL, NULL),
	       ID "; smime=permerror (signature does not parse)",
	       "permerror: no properties that are unknown");
	v = verdict(SMIME_FAIL, "", NULL, "", NULL);
	is_fmt(authres_format(ID, &v, NULL, "", NULL), ID "; smime=fail",
	       "empty reason, serial and note are left out");
	v = verdict(SMIME_NONE, "", NULL, NULL, NULL);
	is_fmt(authres_format(ID, &v, NULL, NULL, NULL),
	       ID "; smime=none (not signed)", "a none verdict");
	ok(authres_format("", &v, NULL, NULL, NULL) == NULL &&
	           authres_format(NULL, &v, NULL, NULL, NULL) == NULL,
	   "no authserv-id: NULL");
	is_fmt(authres_format("mx;evil", &v, NULL, NULL, NULL),
	       "\"mx;evil\"; smime=none (not signed)",
	       "an authserv-id that is not a token is quoted");
	is_str(AUTHRES_FIELD, "Authentication-Results", "the field name");
}

/* 1 when s holds no CR, LF or byte outside printable ASCII. */
static int clean_line(const char *s)
{
	for (; s && *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			return 0;
	return s != NULL;
}

static void test_hostile(void)
{
	struct smime_verdict v =
	        verdict(SMIME_FAIL,
	                "signer certificate is for a@b\r\nX-Injected: 1, not "
	                "(x)\\",
	                "evil\r\n@x.id", "10\n05",
	                "CN=\"Root\\\", O=Bad\r\nBcc: victim@x.id");
	char *s = authres_format(ID, &v, "a b@c.id", "note\n.\r\n", NULL);
	char big[2000];

	ok(clean_line(s), "no CR, LF or control byte survives: %s", s);
	ok(s && strstr(s, "(signer certificate is for a@b??X-Injected: 1, "
	                  "not \\(x\\)\\\\)") != NULL,
	   "comment: CR/LF made '?', parentheses and backslash quoted");
	ok(s && strstr(s, "body.smime-identifier=evil\?\?@x.id ") != NULL,
	   "an address with controls: controls made '?' (atext)");
	ok(s && strstr(s, "body.smime-serial=\"10?05\"") != NULL,
	   "a serial with a newline is no token: quoted");
	ok(s && strstr(s, "body.smime-issuer=\"CN=\\\"Root\\\\\\\", "
	                  "O=Bad??Bcc: victim@x.id\"") != NULL,
	   "issuer: quotes and backslashes escaped inside the quoted-string");
	ok(s && strstr(s, "header.from=\"a b@c.id\"") != NULL,
	   "an address with a space is quoted");
	ok(s && strstr(s, "(note?.\?\?)") != NULL, "the note is sanitized too");
	free(s);

	v = verdict(SMIME_PASS, "dari pak \xc3\x81ndi", "\xc3\xa1@x.id", "1",
	            "CN=Bj\xc3\xb6rk");
	s = authres_format(ID, &v, NULL, NULL, NULL);
	ok(clean_line(s), "8-bit bytes never reach the field: %s", s);
	ok(s && strstr(s, "(dari pak ??ndi)") && strstr(s, "=\?\?@x.id ") &&
	           strstr(s, "\"CN=Bj??rk\""),
	   "8-bit bytes become '?'");
	free(s);

	memset(big, 'A', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	v = verdict(SMIME_FAIL, big, big, big, big);
	s = authres_format(ID, &v, big, big, NULL);
	ok(s && strlen(s) < 6 * (AUTHRES_PIECE_MAX + 40),
	   "every piece is cut (%zu bytes for 6 x 2000)", s ? strlen(s) : 0);
	ok(s && strstr(s, "AAA...") != NULL, "a cut piece ends in ...");
	free(s);
}

/* Every line of s (split at eol) within limit columns, the first after
 * the field name, save one that is only the issuer's quoted-string (never
 * folded); each continuation starts with a space. */
static int lines_ok(const char *s, const char *eol, size_t limit)
{
	size_t col = strlen(AUTHRES_FIELD) + 2, n;
	const char *p = s, *e;

	for (;;) {
		e = strstr(p, eol);
		n = e ? (size_t)(e - p) : strlen(p);
		if (col + n > limit &&
		    (strncmp(p, " body.smime-issuer=\"", 20) != 0 ||
		     p[n - 1] != '"' || n > 998))
			return 0;
		if (e == NULL)
			return 1;
		if (e[strlen(eol)] != ' ')
			return 0;
		p = e + strlen(eol);
		col = 0;
	}
}

/* s without every eol. */
static char *unfold(const char *s, const char *eol)
{
	char *out = strdup(s), *p;

	while ((p = strstr(out, eol)) != NULL)
		memmove(p, p + strlen(eol), strlen(p + strlen(eol)) + 1);
	return out;
}

static void test_fold(void)
{
	struct smime_verdict v =
	        verdict(SMIME_PASS,
	                "signature verified, chain to CN=Root CA Kementerian "
	                "Komunikasi dan Informatika Republik Indonesia,O=BSrE",
	                "mitra@jabarprov.go.id", "1005",
	                "CN=Balai Sertifikasi Elektronik Issuing CA G2,O=Badan "
	                "Siber "
	                "dan Sandi Negara,C=ID");
	const char *note = "decrypted for andi@banjarkota.go.id, certificate "
	                   "1A2B, AES-256-GCM";
	char *one = authres_format(ID, &v, "mitra@jabarprov.go.id", note, NULL);
	char *crlf =
	        authres_format(ID, &v, "mitra@jabarprov.go.id", note, "\r\n");
	char *lf = authres_format(ID, &v, "mitra@jabarprov.go.id", note, "\n");
	char *u = crlf ? unfold(crlf, "\r\n") : NULL;
	const char *q;

	ok(one && strchr(one, '\n') == NULL && strlen(one) > 200,
	   "without eol: one line of %zu", one ? strlen(one) : 0);
	ok(crlf && strstr(crlf, "\r\n "), "with CRLF: folded");
	ok(crlf && lines_ok(crlf, "\r\n", 78), "... every line within 78");
	is_str(u, one, "... and unfolding gives the one-line value");
	ok(lf && strstr(lf, "\n ") && !strchr(lf, '\r') &&
	           lines_ok(lf, "\n", 78),
	   "with LF (smfi_addheader): folded the same way");
	q = crlf ? strstr(crlf, "body.smime-issuer=\"") : NULL;
	ok(q && strstr(q, "\r\n") == NULL,
	   "never folded inside the issuer's quoted-string");
	ok(authres_is_ours(crlf, ID), "our folded value is recognized as ours");
	free(one);
	free(crlf);
	free(lf);
	free(u);
}

static const struct {
	const char *value;
	int ours;
	const char *what;
} forms[] = {
	{ ID "; smime=pass", 1, "plain" },
	{ "MX.BanjarKota.GO.ID; dkim=pass", 1, "case-insensitive" },
	{ ID " 1; spf=pass smtp.mailfrom=a@b.id", 1, "with a version" },
	{ ID " 1 ; none", 1, "version, spaces, none" },
	{ ID ";", 1, "no space before ;" },
	{ ID, 1, "the id alone" },
	{ "  " ID "; none", 1, "leading spaces" },
	{ "\r\n\t" ID ";\r\n\tdkim=pass header.d=x.id", 1, "folded" },
	{ "(forged) " ID "; smime=pass", 1, "a comment first" },
	{ "(nested (comment \\) here)) " ID ";", 1,
	  "nested comment, quoted )" },
	{ ID "(comment); dmarc=pass", 1, "a comment right after" },
	{ "\"" ID "\"; none", 1, "a quoted-string id" },
	{ "\"mx.banjarkota\\.go.id\"; none", 1, "quoted with a quoted-pair" },
	{ ID ". ; none", 1, "a trailing dot" },
	{ ID " smime=pass", 1, "our id, malformed after it: ours" },
	{ "mx.google.com;\r\n       dkim=pass header.i=@banjarkota.go.id "
	  "header.s=20230601 header.b=AbCd;\r\n       spf=pass (google.com: "
	  "domain of a@banjarkota.go.id designates 1.2.3.4 as permitted "
	  "sender) smtp.mailfrom=a@banjarkota.go.id",
	  0, "Gmail's, naming our domain in properties" },
	{ "spf=pass (sender IP is 1.2.3.4) smtp.mailfrom=banjarkota.go.id; "
	  "dkim=none (message not signed) header.d=none;dmarc=none "
	  "action=none header.from=banjarkota.go.id;",
	  0, "Microsoft 365's, without an authserv-id" },
	{ "mail.jabarprov.go.id;\n\tdkim=pass (2048-bit key; unprotected) "
	  "header.d=jabarprov.go.id header.i=@jabarprov.go.id",
	  0, "OpenDKIM's of another host" },
	{ "mx.banjarkota.go.id.evil.example; smime=pass", 0,
	  "our id + suffix" },
	{ "evil.mx.banjarkota.go.id; smime=pass", 0, "prefix + our id" },
	{ "mx.banjarkota.go; smime=pass", 0, "a prefix of our id" },
	{ "(" ID ") other.example; smime=pass", 0, "our id only in a comment" },
	{ "other.example; smime=pass (" ID ")", 0, "our id later" },
	{ "(" ID "; smime=pass", 0, "an unterminated comment" },
	{ "; smime=pass", 0, "no authserv-id" },
	{ "", 0, "empty" },
	{ "\"" ID, 1, "an unterminated quoted-string still names it" },
	{ ID "\xc3\xa9; none", 0, "8-bit after the id" },
	{ ID "/evil; none", 0, "a tspecial right after the id" },
};

static void test_is_ours(void)
{
	char big[600];

	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++)
		ok(authres_is_ours(forms[i].value, ID) == forms[i].ours,
		   "is_ours %d: %s", forms[i].ours, forms[i].what);
	ok(authres_is_ours("mx.example; none", "mx.example.") == 1,
	   "our id configured with a trailing dot");
	ok(!authres_is_ours(NULL, ID) && !authres_is_ours(ID, NULL) &&
	           !authres_is_ours(ID, ""),
	   "NULL and empty arguments: 0");
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ok(!authres_is_ours(big, big), "an id longer than any we write: 0");
}

int main(void)
{
	test_format();
	test_hostile();
	test_fold();
	test_is_ours();
	return tap_done();
}
