/* authres -- the Authentication-Results field: writing ours, recognizing
 * forged ones (see .h). */
#include "authres.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* A growing string; oom sticks. */
struct out {
	char *p;
	size_t len, cap;
	int oom;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->oom)
		return;
	if (o->len + n + 1 > o->cap) {
		size_t cap = (o->cap ? o->cap * 2 : 256) + n;
		char *p = realloc(o->p, cap);
		if (p == NULL) {
			o->oom = 1;
			return;
		}
		o->p = p;
		o->cap = cap;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = '\0';
}

static void puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

/* s made safe for a header: controls, DEL and 8-bit bytes become '?',
 * cut at AUTHRES_PIECE_MAX bytes ("..." marks the cut).  Static buffer
 * of the caller's. */
static const char *clean(const char *s, char *buf)
{
	size_t i = 0;

	for (; s[i] && i < AUTHRES_PIECE_MAX; i++) {
		unsigned char c = (unsigned char)s[i];
		buf[i] = c < 0x20 || c >= 0x7f ? '?' : (char)c;
	}
	buf[i] = '\0';
	if (s[i])
		memcpy(buf + i, "...", 4);
	return buf;
}

/* RFC 2045 tspecials. */
static int tspecial(int c)
{
	return strchr("()<>@,;:\\\"/[]?=", c) != NULL;
}

static int is_token(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s; s++)
		if (*s <= ' ' || *s >= 0x7f || tspecial(*s))
			return 0;
	return 1;
}

/* local@domain with a dot-atom local part and a plain domain (RFC 8601
 * pvalue allows it unquoted). */
static int is_plain_addr(const char *s)
{
	const char *at = strrchr(s, '@');

	if (at == NULL || at == s || at[1] == '\0')
		return 0;
	for (const char *p = s; p < at; p++)
		if (!isalnum((unsigned char)*p) &&
		    strchr("!#$%&'*+-/=?^_`{|}~.", *p) == NULL)
			return 0;
	for (const char *p = at + 1; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.')
			return 0;
	return s[0] != '.' && at[-1] != '.' && strstr(s, "..") == NULL;
}

/* A value: token, plain address, or quoted-string. */
static void value(struct out *o, const char *raw)
{
	char buf[AUTHRES_PIECE_MAX + 4];
	const char *s = clean(raw, buf);

	if (is_token(s) || is_plain_addr(s)) {
		puts_(o, s);
		return;
	}
	put(o, "\"", 1);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			put(o, "\\", 1);
		put(o, s, 1);
	}
	put(o, "\"", 1);
}

/* " (text)" with parentheses and backslashes quoted. */
static void comment(struct out *o, const char *raw)
{
	char buf[AUTHRES_PIECE_MAX + 4];
	const char *s = clean(raw, buf);

	put(o, " (", 2);
	for (; *s; s++) {
		if (*s == '(' || *s == ')' || *s == '\\')
			put(o, "\\", 1);
		put(o, s, 1);
	}
	put(o, ")", 1);
}

static void prop(struct out *o, const char *name, const char *v)
{
	if (v == NULL || *v == '\0')
		return;
	put(o, " ", 1);
	puts_(o, name);
	put(o, "=", 1);
	value(o, v);
}

/* Mark in can[] the spaces of s where a line may be folded: outside
 * quoted-strings (inside comments is fine: ctext allows FWS). */
static void fold_points(const char *s, char *can)
{
	int quoted = 0, depth = 0;

	for (size_t i = 0; s[i]; i++) {
		can[i] = 0;
		if (s[i] == '\\' && (quoted || depth) && s[i + 1])
			can[++i] = 0;
		else if (s[i] == '"' && depth == 0)
			quoted = !quoted;
		else if (s[i] == '(' && !quoted)
			depth++;
		else if (s[i] == ')' && !quoted && depth > 0)
			depth--;
		else if (s[i] == ' ' && !quoted)
			can[i] = 1;
	}
}

/* s folded with eol before spaces so that lines stay within 78 columns
 * where they can; the first line starts after the field name. */
static char *fold(const char *s, const char *eol)
{
	struct out o = { NULL, 0, 0, 0 };
	size_t len = strlen(s), col = strlen(AUTHRES_FIELD) + 2, i = 0, j;
	char *can = malloc(len + 1);

	if (can == NULL)
		return NULL;
	fold_points(s, can);
	while (i < len) {
		for (j = i + 1; j < len && !can[j]; j++)
			;
		if (can[i] && col > 1 && col + (j - i) > 78) {
			puts_(&o, eol);
			col = 0;
		}
		put(&o, s + i, j - i);
		col += j - i;
		i = j;
	}
	free(can);
	if (o.oom) {
		free(o.p);
		return NULL;
	}
	return o.p;
}

char *authres_format(const char *authserv_id, const struct smime_verdict *v,
                     const char *header_from, const char *decrypt_note,
                     const char *eol)
{
	struct out o = { NULL, 0, 0, 0 };
	char *folded;

	if (authserv_id == NULL || *authserv_id == '\0')
		return NULL;
	value(&o, authserv_id);
	puts_(&o, "; smime=");
	puts_(&o, smime_result_name(v ? v->result : SMIME_NONE));
	if (v && v->reason[0])
		comment(&o, v->reason);
	else if (v == NULL || v->result == SMIME_NONE)
		comment(&o, "not signed");
	if (decrypt_note && *decrypt_note)
		comment(&o, decrypt_note);
	prop(&o, "header.from", header_from);
	if (v) {
		prop(&o, "body.smime-identifier", v->identifier);
		prop(&o, "body.smime-serial", v->serial);
		prop(&o, "body.smime-issuer", v->issuer);
	}
	if (o.oom) {
		free(o.p);
		return NULL;
	}
	if (eol == NULL)
		return o.p;
	folded = fold(o.p, eol);
	free(o.p);
	return folded;
}

/* ---- reading ---------------------------------------------------------- */

/* Skip CFWS: white space, folding and (nested) comments. */
static const char *skip_cfws(const char *s)
{
	for (;;) {
		while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
			s++;
		if (*s != '(')
			return s;
		for (int depth = 0; *s; s++) {
			if (*s == '\\' && s[1])
				s++;
			else if (*s == '(')
				depth++;
			else if (*s == ')' && --depth == 0) {
				s++;
				break;
			}
		}
	}
}

/* Compare a and b (lengths) case-insensitively, a trailing dot ignored. */
static int same_id(const char *a, size_t an, const char *b, size_t bn)
{
	if (an && a[an - 1] == '.')
		an--;
	if (bn && b[bn - 1] == '.')
		bn--;
	return an > 0 && an == bn && strncasecmp(a, b, an) == 0;
}

int authres_is_ours(const char *value, const char *authserv_id)
{
	char id[AUTHRES_PIECE_MAX + 1];
	size_t n = 0;
	const char *s;

	if (value == NULL || authserv_id == NULL || *authserv_id == '\0')
		return 0;
	s = skip_cfws(value);
	if (*s == '"') {
		for (s++; *s && *s != '"'; s++) {
			if (*s == '\\' && s[1])
				s++;
			if (n == sizeof(id) - 1)
				return 0;
			id[n++] = *s;
		}
	} else {
		for (; *s > ' ' && *s < 0x7f && !tspecial(*s); s++) {
			if (n == sizeof(id) - 1)
				return 0;
			id[n++] = *s;
		}
		/* a token ends at CFWS, ";" or the end, or it is not an id */
		if (*s && !strchr(" \t\r\n(;", *s))
			return 0;
	}
	return same_id(id, n, authserv_id, strlen(authserv_id));
}
