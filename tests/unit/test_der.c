/*
 * test_der -- lib/der.c: headers (short, long, BER leading zeros, high tag
 * numbers, hostile lengths, headers longer than DER_HDR_MAX), the walk
 * (indefinite lengths, end-of-contents, definite limits of ancestors,
 * DER_WHOLE, the pieces of constructed OCTET STRINGs), the nesting limit,
 * and the same events whatever the input is cut into.
 */
#include "der.h"
#include "fixture.h"
#include "tap.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void tr(char *t, size_t tlen, const char *fmt, ...)
{
	size_t n = strlen(t);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(t + n, tlen - n, fmt, ap);
	va_end(ap);
}

/*
 * Walk in[0..len) as if fed first octets, then step more each time the
 * walk asks for more (the pieces need not be copied: the walker only sees
 * what has come).  Every element is entered: a constructed OCTET STRING
 * as DER_OCTETS, a [1] and what is in a whole one as DER_WHOLE.  The trace: {tag for an element
 * entered, < for a piece, the data in hex, } for an end, then "." (the
 * input ended between elements), "CUT" (it ended inside one) or "E<n>".
 */
static const char *walk(const unsigned char *in, size_t len, size_t first,
                        size_t step, char *t, size_t tlen)
{
	static const char cls[] = "UACP";
	struct der_walk w;
	struct der_ev ev;
	size_t off = 0, fed = first < len ? first : len;

	t[0] = '\0';
	der_walk_init(&w);
	for (;;) {
		int e = der_walk_next(&w, in + off, fed - off, fed == len, &ev);

		if (e == DER_MORE) {
			if (fed == len) {
				tr(t, tlen, "%s",
				   off == len && w.depth == 1 ? "." : "CUT");
				return t;
			}
			fed = fed + step < len ? fed + step : len;
			continue;
		}
		if (e < 0) {
			tr(t, tlen, "E%d", -e);
			return t;
		}
		if (e == DER_DATA)
			for (size_t i = 0; i < ev.n; i++)
				tr(t, tlen, "%02x", in[off + i]);
		off += ev.n;
		if (e == DER_PIECE)
			tr(t, tlen, "<");
		else if (e == DER_END)
			tr(t, tlen, "}");
		else if (e == DER_HEAD) {
			int fl = 0;
			if (der_hdr_is(&ev.h, DER_UNIVERSAL, DER_OCTET_STRING,
			               1))
				fl = DER_OCTETS;
			else if ((ev.h.cls == DER_CONTEXT && ev.h.tag == 1) ||
			         (der_walk_top(&w)->flags & DER_WHOLE))
				fl = DER_WHOLE;
			if ((e = der_walk_enter(&w, &ev.h, fl)) < 0) {
				tr(t, tlen, "E%d", -e);
				return t;
			}
			off += ev.h.hl;
			tr(t, tlen, "{%c%d%s", cls[ev.h.cls >> 6], ev.h.tag,
			   ev.h.cons ? "c" : "");
		}
	}
}

/* walk() in one piece. */
static const char *walk1(const void *in, size_t len)
{
	static char t[4096];

	return walk(in, len, len, len, t, sizeof(t));
}

static void test_hdr(void)
{
	struct der_hdr h;
	unsigned char big[40];

	ok(der_hdr_get((const unsigned char *)"\x30\x03", 2, 0, &h) == 1 &&
	           h.cls == DER_UNIVERSAL && h.tag == 16 && h.cons &&
	           !h.indef && h.len == 3 && h.hl == 2,
	   "30 03: a SEQUENCE of 3 octets, 2 header octets");
	ok(der_hdr_get((const unsigned char *)"\x04\x82\x00\x05", 4, 0, &h) ==
	                   1 &&
	           h.len == 5 && h.hl == 4 && !h.cons,
	   "04 82 00 05: BER leading zero in the length");
	ok(der_hdr_get((const unsigned char *)"\xa0\x80", 2, 0, &h) == 1 &&
	           h.cls == DER_CONTEXT && h.tag == 0 && h.indef,
	   "a0 80: [0], indefinite");
	ok(der_hdr_get((const unsigned char *)"\x04\x80", 2, 0, &h) == -1,
	   "04 80: a primitive of indefinite length is malformed");
	ok(der_hdr_get((const unsigned char *)"\x5f\x81\x00\x01", 4, 0, &h) ==
	                   1 &&
	           h.cls == DER_APPLICATION && h.tag == 128 && h.len == 1 &&
	           h.hl == 4,
	   "5f 81 00 01: high tag number 128");
	ok(der_hdr_get((const unsigned char *)"\x1f\x88\x80\x80\x80\x00\x00", 7,
	               0, &h) == -1,
	   "a tag number past INT_MAX is malformed");
	ok(der_hdr_get((const unsigned char *)"\x04\x88\x7f\xff\xff\xff\xff\xff"
	                                      "\xff\xff",
	               10, 0, &h) == 1 &&
	           h.len == 0x7fffffffffffffffULL && h.hl == 10,
	   "an 8-octet length up to 2^63-1");
	ok(der_hdr_get((const unsigned char *)"\x04\x88\x80\x00\x00\x00\x00"
	                                      "\x00\x00\x00",
	               10, 0, &h) == -1,
	   "a length of 2^63: malformed");
	ok(der_hdr_get((const unsigned char *)"\x04\x89\x01\x00\x00\x00\x00"
	                                      "\x00\x00\x00\x00",
	               11, 0, &h) == -1,
	   "a 9-octet length (2^64): malformed");
	ok(der_hdr_get((const unsigned char *)"\x04\x89\x00\x00\x00\x00\x00"
	                                      "\x00\x00\x00\x07",
	               11, 0, &h) == 1 &&
	           h.len == 7,
	   "9 length octets, leading zeros: 7");
	memset(big, 0, sizeof(big));
	big[0] = 0x30;
	big[1] = 0x8f;
	ok(der_hdr_get(big, sizeof(big), 0, &h) == -1,
	   "30 8f and 15 zeros: longer than DER_HDR_MAX, malformed "
	   "(not: more input)");
	big[1] = 0xff;
	ok(der_hdr_get(big, sizeof(big), 0, &h) == -1,
	   "a length of 127 octets: malformed");
	ok(der_hdr_get((const unsigned char *)"\x30\x82\x01", 3, 0, &h) == 0,
	   "30 82 01: more input needed");
	ok(der_hdr_get((const unsigned char *)"\x30\x82\x01", 3, 1, &h) == -1,
	   "30 82 01 at the end of input: cut short");
	ok(der_hdr_get((const unsigned char *)"", 0, 0, &h) == 0 &&
	           der_hdr_get((const unsigned char *)"", 0, 1, &h) == -1,
	   "nothing: more needed, or cut short at eof");
}

/* SEQUENCE (indefinite) { INTEGER 5, OCTET STRING (constructed,
 * indefinite) { "ab", { "c" }, "" }, SET { NULL }, [1] { garbage } } */
static const unsigned char sample[] = {
	0x30, 0x80, 0x02, 0x01, 0x05, 0x24, 0x80, 0x04, 0x02, 0x61, 0x62,
	0x24, 0x80, 0x04, 0x01, 0x63, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00,
	0x31, 0x02, 0x05, 0x00, 0xa1, 0x03, 0xff, 0xff, 0xff, 0x00, 0x00
};
static const char sample_trace[] = "{U16c{U2"
                                   "05}{U4c<"
                                   "6162}<<"
                                   "63}}<}}{U17c{U5}}{C1c"
                                   "ffffff}}.";

static void test_walk(void)
{
	char t[4096];
	int same = 1;

	is_str(walk1(sample, sizeof(sample)), sample_trace,
	       "a BER sample in one piece: every element, the pieces of the "
	       "OCTET STRING as data, [1] whole");
	for (size_t k = 1; k < sizeof(sample) && same; k++) {
		same = strcmp(walk(sample, sizeof(sample), k, sizeof(sample), t,
		                   sizeof(t)),
		              sample_trace) == 0;
		if (!same)
			printf("#   cut at %zu: %s\n", k, t);
	}
	ok(same, "cut in two at every octet: the same events");
	is_str(walk(sample, sizeof(sample), 1, 1, t, sizeof(t)), sample_trace,
	       "fed one octet at a time: the same events");
	same = 1;
	for (size_t k = 1; k < sizeof(sample) && same; k++) {
		size_t n = strlen(walk(sample, k, 1, 1, t, sizeof(t)));
		same = (n > 3 && strcmp(t + n - 3, "CUT") == 0) ||
		       (n >= 2 && strcmp(t + n - 2, "E1") == 0);
	}
	ok(same, "cut short anywhere: the walk says so (%s)", t);
	is_str(walk1("\x04\x03"
	             "abc"
	             "\x05\x00",
	             7),
	       "{U4"
	       "616263}{U5}.",
	       "two elements after each other at the top");
}

static void test_hostile(void)
{
	is_str(walk1("\x30\x03\x04\x05"
	             "abcde",
	             9),
	       "{U16cE3", "a length past its parent's end");
	is_str(walk1("\x30\x06\x30\x80\x04\x05"
	             "abcde\x00\x00",
	             13),
	       "{U16c{U16cE3",
	       "a length past a definite grandparent, through an "
	       "indefinite parent");
	is_str(walk1("\x30\x04\x30\x80\x00\x00\x00\x00", 8), "{U16c{U16c}}E2",
	       "an end-of-contents at the top: misplaced");
	is_str(walk1("\x30\x02\x00\x00", 4), "{U16cE2",
	       "an end-of-contents in a definite element: misplaced");
	is_str(walk1("\x30\x80\x00\x01\x00", 5), "{U16cE2",
	       "an end-of-contents with a length: misplaced");
	is_str(walk1("\x30\x80\x20\x00", 4), "{U16cE2",
	       "a constructed end-of-contents: misplaced");
	is_str(walk1("\x04\x88\x3f\xff\xff\xff\xff\xff\xff\xff"
	             "ab",
	             12),
	       "{U4"
	       "6162CUT",
	       "a length of 2^62 at the top: the data that came, then cut");
	is_str(walk1("\x24\x80\x30\x00\x00\x00", 6), "{U4cE4",
	       "a piece of an OCTET STRING that is a SEQUENCE");
	is_str(walk1("\x24\x04\x04\x03\x61\x62", 6), "{U4cE3",
	       "a piece past its OCTET STRING's end");
	is_str(walk1("\xa1\x04\x30\x80\xff\xff", 6),
	       "{C1c30"
	       "80ffff}.",
	       "[1] entered whole: its contents are not parsed");
	is_str(walk1("\xa1\x80\x30\x02\xff\xff\x00\x00", 8), "{C1c{U16cffff}}.",
	       "[1] indefinite, whole: children as data, one level down");
}

static void test_depth(void)
{
	unsigned char in[4 * DER_DEPTH_MAX + 16];
	char want[8 * DER_DEPTH_MAX], t[4096];
	size_t n = 0;

	/* DER_DEPTH_MAX - 1 SEQUENCEs nested: the walk's deepest */
	want[0] = '\0';
	for (int i = 0; i < DER_DEPTH_MAX - 1; i++) {
		memcpy(in + n, "\x30\x80", 2);
		n += 2;
		tr(want, sizeof(want), "{U16c");
	}
	memset(in + n, 0, 2 * (DER_DEPTH_MAX - 1));
	for (int i = 0; i < DER_DEPTH_MAX - 1; i++)
		tr(want, sizeof(want), "}");
	tr(want, sizeof(want), ".");
	is_str(walk(in, n + 2 * (DER_DEPTH_MAX - 1), 1, 1, t, sizeof(t)), want,
	       "%d levels of indefinite SEQUENCEs: walked", DER_DEPTH_MAX - 1);
	memcpy(in + n, "\x30\x80", 2);
	memset(in + n + 2, 0, 2 * DER_DEPTH_MAX);
	ok(strstr(walk1(in, n + 2 + 2 * DER_DEPTH_MAX), "E5") != NULL,
	   "one more: too deep (E5)");
	n = 0;
	for (int i = 0; i < DER_DEPTH_MAX + 4; i++, n += 2)
		memcpy(in + n, "\x24\x80", 2);
	ok(strstr(walk1(in, n), "<E5") != NULL,
	   "constructed OCTET STRING pieces nested too deep: E5 (%s)",
	   walk1(in, n));
}

/* A two-rule grammar: a SEQUENCE at the top holds an OCTET STRING of
 * either form, then nothing. */
static void test_rules(void)
{
	static const struct der_rule g[] = {
		{ 0, 0, DER_UNIVERSAL, DER_SEQUENCE, 1, 1, 7, 0, 0, 0 },
		{ 7, 0, DER_UNIVERSAL, DER_OCTET_STRING, -1, 1, 8, DER_OCTETS,
		  3, 2 },
	};
	static const unsigned char in[] = { 0x30, 0x80, 0x24, 0x80, 0x04, 0x01,
		                            0x61, 0x00, 0x00, 0x04, 0x00 };
	struct der_walk w;
	struct der_ev ev;
	const struct der_rule *r;
	size_t off = 0;
	int e, good = 1;

	der_walk_init(&w);
	e = der_walk_next(&w, in, sizeof(in), 1, &ev);
	r = der_rule_find(g, 2, der_walk_top(&w), &ev.h);
	ok(e == DER_HEAD && r == &g[0] && der_rule_enter(&w, r, &ev.h) == 0 &&
	           w.st[0].step == 1 && der_walk_top(&w)->kind == 7,
	   "the SEQUENCE: rule 0; the top frame moves to step 1");
	off = ev.h.hl;
	e = der_walk_next(&w, in + off, sizeof(in) - off, 1, &ev);
	r = der_rule_find(g, 2, der_walk_top(&w), &ev.h);
	ok(e == DER_HEAD && r == &g[1] && der_rule_enter(&w, r, &ev.h) == 0 &&
	           der_walk_top(&w)->kind == 8 && der_walk_top(&w)->sink == 3 &&
	           der_walk_top(&w)->keep == 2,
	   "a constructed OCTET STRING: rule 1 (either form), its kind, sink "
	   "and keep");
	off += ev.h.hl;
	while (good && (e = der_walk_next(&w, in + off, sizeof(in) - off, 1,
	                                  &ev)) != DER_HEAD) {
		good = e > 0;
		if (e == DER_PIECE)
			good = ev.f.kind == 8 && ev.f.keep == 2;
		off += ev.n;
	}
	ok(good && der_rule_find(g, 2, der_walk_top(&w), &ev.h) == NULL,
	   "its pieces inherit kind and keep; an OCTET STRING after it: no "
	   "rule");
}

int main(void)
{
	test_hdr();
	test_walk();
	test_hostile();
	test_depth();
	test_rules();
	return fixture_end(tap_done());
}
