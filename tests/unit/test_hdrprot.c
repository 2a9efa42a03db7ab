/* test_hdrprot -- lib/hdrprot.c: which fields are protected, which names
 * protected_headers refuses, the hp parameter, and the root part's header
 * section (RFC 9788) that hdrprot_build makes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hdrprot.h"
#include "tap.h"

/* The fields of hp as "Name: value\n" lines, for one comparison. */
static const char *show(const struct hdrprot *hp)
{
	static char buf[8192];
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < hp->n && n < sizeof(buf); i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s: %s\n",
		                      hp->h[i].name, hp->h[i].value);
	return buf;
}

static void test_names(void)
{
	static char x1[] = "x-test-id";
	static char *extra[] = { x1 };
	const char *const yes[] = { "From",     "to",          "CC",
		                    "Subject",  "date",        "Message-ID",
		                    "reply-to", "In-Reply-To", "REFERENCES" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		ok(hdrprot_is_protected(yes[i], NULL, 0), "%s is protected",
		   yes[i]);
	ok(!hdrprot_is_protected("Received", NULL, 0) &&
	           !hdrprot_is_protected("Bcc", NULL, 0) &&
	           !hdrprot_is_protected("Content-Type", NULL, 0) &&
	           !hdrprot_is_protected("X-Test-Id", NULL, 0) &&
	           !hdrprot_is_protected(NULL, NULL, 0),
	   "Received, Bcc, Content-Type, X-Test-Id, NULL are not");
	ok(hdrprot_is_protected("X-Test-ID", extra, 1) &&
	           !hdrprot_is_protected("X-Other", extra, 1),
	   "protected_headers adds a name, in any case");
	ok(hdrprot_name_refused("X-Dinas") == NULL &&
	           hdrprot_name_refused("Keywords") == NULL,
	   "X-Dinas and Keywords may be protected");
	ok(hdrprot_name_refused("Content-Type") != NULL &&
	           hdrprot_name_refused("content-disposition") != NULL &&
	           hdrprot_name_refused("MIME-Version") != NULL,
	   "structural fields are refused (%s)",
	   hdrprot_name_refused("Content-Type"));
	ok(hdrprot_name_refused("bcc") != NULL &&
	           hdrprot_name_refused("HP-Outer") != NULL,
	   "Bcc and HP-Outer are refused");
	ok(hdrprot_name_refused("") != NULL &&
	           hdrprot_name_refused("X Y") != NULL &&
	           hdrprot_name_refused("X:Y") != NULL &&
	           hdrprot_name_refused("X-\xc3\xa9") != NULL &&
	           hdrprot_name_refused(NULL) != NULL,
	   "empty names, blanks, ':' and 8-bit octets are refused");
}

static void test_ct_has_hp(void)
{
	ok(hdrprot_ct_has_hp("text/plain; hp=\"clear\""), "hp= found");
	ok(hdrprot_ct_has_hp("text/plain;\n\tHP = cipher"),
	   "HP = after a fold, any case");
	ok(!hdrprot_ct_has_hp("text/plain; name=\"a; hp=x\""),
	   "not inside a quoted string");
	ok(!hdrprot_ct_has_hp("text/plain; (; hp=x) charset=us-ascii"),
	   "not inside a comment");
	ok(!hdrprot_ct_has_hp("text/plain; hpx=1; xhp=2") &&
	           !hdrprot_ct_has_hp(NULL),
	   "hpx=, xhp= and NULL are not hp");
}

static void test_build(void)
{
	const struct mime_header ch[] = {
		{ "Content-Type", "multipart/mixed;\n\tboundary=\"b\"" },
		{ "Content-Transfer-Encoding", "7bit" },
	};
	const struct mime_header prot[] = {
		{ "From", "Andi <andi@banjarkota.go.id>" },
		{ "Subject", " Undangan rapat\n\tkoordinasi" },
		{ "Date", "Tue, 24 Nov 2026 09:01:00 +0700" },
	};
	struct hdrprot hp;
	char *longv = malloc(1200);

	ok(hdrprot_build(ch, 2, "text/plain; charset=us-ascii", prot, 3, 0,
	                 &hp) == 0,
	   "signed only: built");
	is_str(show(&hp),
	       "Content-Type: multipart/mixed;\n\tboundary=\"b\"; "
	       "hp=\"clear\"\n"
	       "Content-Transfer-Encoding: 7bit\n"
	       "From: Andi <andi@banjarkota.go.id>\n"
	       "Subject:  Undangan rapat\n\tkoordinasi\n"
	       "Date: Tue, 24 Nov 2026 09:01:00 +0700\n",
	       "signed only: Content-* with hp=\"clear\", then the copies in "
	       "order, no HP-Outer");
	ok(hp.h[2].value == prot[0].value,
	   "the copies reference the caller's strings");
	hdrprot_free(&hp);
	ok(hp.h == NULL && hp.n == 0, "hdrprot_free clears");
	hdrprot_free(&hp);
	hdrprot_free(NULL);

	ok(hdrprot_build(ch, 2, NULL, prot, 3, 1, &hp) == 0,
	   "encrypted: built");
	is_str(show(&hp),
	       "Content-Type: multipart/mixed;\n\tboundary=\"b\"; "
	       "hp=\"cipher\"\n"
	       "Content-Transfer-Encoding: 7bit\n"
	       "From: Andi <andi@banjarkota.go.id>\n"
	       "Subject:  Undangan rapat\n\tkoordinasi\n"
	       "Date: Tue, 24 Nov 2026 09:01:00 +0700\n"
	       "HP-Outer: From: Andi <andi@banjarkota.go.id>\n"
	       "HP-Outer: Subject: Undangan rapat\n\tkoordinasi\n"
	       "HP-Outer: Date: Tue, 24 Nov 2026 09:01:00 +0700\n",
	       "encrypted: hp=\"cipher\" and one HP-Outer per protected field, "
	       "the outer value as it is");
	hdrprot_free(&hp);

	ok(hdrprot_build(NULL, 0, "text/plain; charset=utf-8", prot, 1, 0,
	                 &hp) == 0,
	   "no Content-Type: built");
	is_str(show(&hp),
	       "Content-Type: text/plain; charset=utf-8; hp=\"clear\"\n"
	       "From: Andi <andi@banjarkota.go.id>\n",
	       "no Content-Type: the default one carries hp");
	hdrprot_free(&hp);

	{
		const struct mime_header c2[] = {
			{ "Content-Type",
			  "text/plain; charset=us-ascii; \r\n" },
		};
		struct mime_header p2[] = { { "Subject", longv },
			                    { "To", "x@example.org" } };
		memset(longv, 'a', 1199);
		longv[1199] = '\0';
		ok(hdrprot_build(c2, 1, NULL, p2, 2, 1, &hp) == 0,
		   "trailing '; CRLF' and a long value: built");
		is_str(show(&hp),
		       "Content-Type: text/plain; charset=us-ascii; "
		       "hp=\"cipher\"\n"
		       "To: x@example.org\nHP-Outer: To: x@example.org\n",
		       "trailing blanks and ';' go before hp; a field with "
		       "no place to fold it within 900 octets is not copied");
		hdrprot_free(&hp);
		memset(longv + 500, ' ', 1);
		ok(hdrprot_build(c2, 1, NULL, p2, 1, 0, &hp) == 0 &&
		           hp.n == 2 && hp.h[1].value == longv,
		   "the same value with a blank at 500 is copied");
		hdrprot_free(&hp);
	}
	free(longv);
}

/* 8-bit values: text as RFC 2047 words, structured fields left out. */
static void test_8bit(void)
{
	const struct mime_header prot[] = {
		{ "From", "\xc3\x89lia <elia@banjarkota.go.id>" },
		{ "Subject", " caf\xc3\xa9\n\tbaru " },
		{ "X-Catatan", "latin-1 \xe9" },
	};
	struct mime_header longs[] = { { "Subject", NULL } };
	char longv[200], *w;
	struct hdrprot hp;
	int words = 0, whole = 1;

	ok(hdrprot_build(NULL, 0, NULL, prot, 3, 1, &hp) == 0, "8-bit: built");
	is_str(show(&hp),
	       "Content-Type: text/plain; charset=us-ascii; hp=\"cipher\"\n"
	       "Subject: =?utf-8?B?Y2Fmw6kJYmFydQ==?=\n"
	       "X-Catatan: =?unknown-8bit?B?bGF0aW4tMSDp?=\n"
	       "HP-Outer: Subject: =?utf-8?B?Y2Fmw6kJYmFydQ==?=\n"
	       "HP-Outer: X-Catatan: =?unknown-8bit?B?bGF0aW4tMSDp?=\n",
	       "UTF-8 text unfolded into utf-8 words, other octets "
	       "unknown-8bit, an 8-bit From left out (HP-Outer alike)");
	hdrprot_free(&hp);
	/* 99 two-octet characters: several words, none splits one */
	for (int i = 0; i < 100; i++)
		memcpy(longv + 2 * i, "\xc3\xa9", 2);
	longv[198] = '\0';
	longs[0].value = longv;
	ok(hdrprot_build(NULL, 0, NULL, longs, 1, 0, &hp) == 0 && hp.n == 2,
	   "a long UTF-8 Subject: built");
	for (w = strstr(hp.h[1].value, "=?utf-8?B?"); w;
	     w = strstr(w + 1, "=?utf-8?B?")) {
		const char *e = strstr(w, "?=");
		words++;
		/* 44 octets are 60 base64 characters: whole characters only */
		if (e == NULL || e - w - 10 != (e[2] ? 60 : 32) ||
		    e - w + 2 > 75)
			whole = 0;
	}
	ok(words == 5 && whole,
	   "... as 5 words of at most 75 characters, "
	   "44 octets each (%d words)",
	   words);
	ok(strstr(hp.h[1].value, "?=\n =?utf-8?B?") != NULL,
	   "... folded between the words");
	hdrprot_free(&hp);
}

int main(void)
{
	test_names();
	test_ct_has_hp();
	test_build();
	test_8bit();
	return tap_done();
}
