/*
 * evidence_hp -- the protected header fields of a signed message (RFC
 * 9788, written by lib/hdrprot.c) against its outer header section, for
 * smimectl verify: a Subject, From, To or Date changed after signing is
 * named.  Only a root part whose Content-Type carries the hp parameter
 * holds such copies; a message without it has nothing to compare.
 */
#include "evidence_int.h"
#include "hdrprot.h"
#include "mime.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

/* Decode RFC 2047 "=?charset?B|Q?text?=" words of v in place (the charset
 * is not converted: hdrprot writes the octets of the outer value). */
static void decode_words(char *v)
{
	char *w = v, *r = v;

	while (*r) {
		char *q1, *q2, *end;
		if (r[0] != '=' || r[1] != '?' ||
		    (q1 = strchr(r + 2, '?')) == NULL ||
		    (q1[1] != 'B' && q1[1] != 'b' && q1[1] != 'Q' &&
		     q1[1] != 'q') ||
		    q1[2] != '?' || (end = strstr(q1 + 3, "?=")) == NULL) {
			*w++ = *r++;
			continue;
		}
		q2 = q1 + 3;
		if (q1[1] == 'B' || q1[1] == 'b') {
			unsigned char out[512];
			int n = (int)(end - q2), got;
			if (n > 680 ||
			    (got = EVP_DecodeBlock(out, (unsigned char *)q2,
			                           n)) < 0) {
				*w++ = *r++;
				continue;
			}
			while (n > 0 && q2[n - 1] == '=') /* padding octets */
				n--, got--;
			memcpy(w, out, (size_t)got);
			w += got;
		} else {
			for (char *p = q2; p < end; p++) {
				if (*p == '_')
					*w++ = ' ';
				else if (*p == '=' &&
				         isxdigit((unsigned char)p[1]) &&
				         isxdigit((unsigned char)p[2])) {
					char hx[3] = { p[1], p[2], 0 };
					*w++ = (char)strtol(hx, NULL, 16);
					p += 2;
				} else
					*w++ = *p;
			}
		}
		r = end + 2;
		/* blanks between two adjacent words are not text (RFC 2047) */
		if (*r == ' ' && r[1] == '=' && r[2] == '?')
			r++;
	}
	*w = '\0';
}

/* The hp parameter of a Content-Type value: "cipher" or "clear". */
static const char *hp_value(const char *ct)
{
	for (const char *p = strchr(ct, ';'); p; p = strchr(p + 1, ';')) {
		const char *q = p + 1 + strspn(p + 1, " \t");
		if (strncasecmp(q, "hp", 2) != 0)
			continue;
		q += 2 + strspn(q + 2, " \t");
		if (*q != '=')
			continue;
		q += 1 + strspn(q + 1, " \t\"");
		return strncasecmp(q, "cipher", 6) == 0 ? "cipher" : "clear";
	}
	return "clear";
}

/* The field name at the start of line [i, e) of hdr into name, or "". */
static void field_name(struct ev_span hdr, size_t i, size_t e, char *name,
                       size_t len)
{
	size_t k = 0;

	name[0] = '\0';
	if (i < e && (hdr.p[i] == ' ' || hdr.p[i] == '\t'))
		return; /* a fold */
	while (i + k < e && hdr.p[i + k] != ':' && k + 1 < len)
		k++;
	if (i + k < e && hdr.p[i + k] == ':') {
		memcpy(name, hdr.p + i, k);
		name[k] = '\0';
	}
}

/* Record the first difference in e: "Subject changed after signing:
 * signed 'A', now 'B'". */
static void differs(struct evidence *e, const char *name, const char *what,
                    const char *signed_v, const char *now_v)
{
	if (e->hp_changed)
		return;
	e->hp_changed = strdup(name);
	snprintf(e->hp_detail, sizeof(e->hp_detail),
	         "%s %s after signing: signed '%.160s', now '%.160s'", name,
	         what, signed_v ? signed_v : "(none)",
	         now_v ? now_v : "(none)");
}

/* Compare the copy of field name (its n-th occurrence) with the outside. */
static void compare(struct ev_span inner, struct ev_span outer,
                    const char *name, int n, struct evidence *e)
{
	char *in = ev_header_n(inner, name, n),
	     *out = ev_header_n(outer, name, n);

	if (in)
		decode_words(in);
	if (out)
		decode_words(out);
	e->hp_fields++;
	if (out == NULL)
		differs(e, name, "removed", in, NULL);
	else if (in && strcmp(in, out) != 0)
		differs(e, name, "changed", in, out);
	free(in);
	free(out);
}

void ev_hp_compare(struct ev_span content, struct ev_span outer,
                   struct evidence *e)
{
	struct ev_span ih, ib;
	char *ct, name[80];
	size_t i = 0, e2;

	ev_split(content, &ih, &ib);
	ct = ev_header(ih, "Content-Type");
	if (ct == NULL || !hdrprot_ct_has_hp(ct)) {
		free(ct);
		return;
	}
	e->hp = hp_value(ct);
	free(ct);
	for (; i < ih.n; i = e2) {
		const unsigned char *lf = memchr(ih.p + i, '\n', ih.n - i);
		e2 = lf ? (size_t)(lf - ih.p) + 1 : ih.n;
		field_name(ih, i, e2, name, sizeof(name));
		if (name[0] == '\0' || strncasecmp(name, "Content-", 8) == 0 ||
		    strcasecmp(name, "MIME-Version") == 0 ||
		    strcasecmp(name, "HP-Outer") == 0)
			continue;
		{
			/* the how-manieth of this name inside */
			int nth = 0;
			for (size_t j = 0; j < i;) {
				const unsigned char *l2 =
				        memchr(ih.p + j, '\n', i - j);
				size_t f = l2 ? (size_t)(l2 - ih.p) + 1 : i;
				char other[80];
				field_name(ih, j, f, other, sizeof(other));
				nth += strcasecmp(other, name) == 0;
				j = f;
			}
			compare(ih, outer, name, nth, e);
		}
	}
	/* a protected name outside that the signer did not send */
	for (i = 0; i < outer.n; i = e2) {
		const unsigned char *lf =
		        memchr(outer.p + i, '\n', outer.n - i);
		char *in, *val;
		e2 = lf ? (size_t)(lf - outer.p) + 1 : outer.n;
		field_name(outer, i, e2, name, sizeof(name));
		/* an MTA adds a missing Date or Message-ID on its own */
		if (name[0] == '\0' || !hdrprot_is_protected(name, NULL, 0) ||
		    strcasecmp(name, "Date") == 0 ||
		    strcasecmp(name, "Message-ID") == 0)
			continue;
		in = ev_header(ih, name);
		val = ev_header(outer, name);
		/* 8-bit structured values are not copied (hdrprot.h) */
		if (in == NULL && val) {
			int ascii = 1;
			for (const char *p = val; *p; p++)
				ascii &= (unsigned char)*p < 0x80;
			if (ascii)
				differs(e, name, "added", NULL, val);
		}
		free(in);
		free(val);
	}
}
