/* Unit tests: address parsing (lib/util.c) -- the From address that picks
 * the signer, and the To/Cc/Bcc lists that give -t its recipients. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tap.h"
#include "util.h"

struct seen {
	char all[1024];
	int n;
};

static void collect(void *arg, const char *addr)
{
	struct seen *s = arg;

	if (s->n++)
		strcat(s->all, " ");
	strcat(s->all, addr);
}

static const char *list(const char *value, int *count)
{
	static struct seen s;

	memset(&s, 0, sizeof(s));
	*count = addr_list_each(value, collect, &s);
	return s.all;
}

/* CPU seconds of addr_from_header on "<" and n commas (no '>'): the
 * fastest of five runs, so that a busy machine adds as little as it can. */
static double from_commas_time(size_t n)
{
	char *v = malloc(n + 2), out[320], err[128];
	double best = -1;

	if (v == NULL)
		return -1;
	v[0] = '<';
	memset(v + 1, ',', n);
	v[n + 1] = '\0';
	for (int r = 0; r < 5; r++) {
		struct timespec a, b;
		double t;
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
		addr_from_header(v, out, sizeof(out), err, sizeof(err));
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
		t = (double)(b.tv_sec - a.tv_sec) +
		    (double)(b.tv_nsec - a.tv_nsec) / 1e9;
		if (best < 0 || t < best)
			best = t;
	}
	free(v);
	return best;
}

int main(void)
{
	char out[320], err[128];
	int n;

	ok(addr_from_header("Andi <Andi@Banjarkota.go.id>", out, sizeof(out),
	                    err, sizeof(err)) == 0 &&
	           strcmp(out, "andi@banjarkota.go.id") == 0,
	   "From with a display name, lower-cased (%s)", out);
	ok(addr_from_header("a@b.c, d@e.f", out, sizeof(out), err,
	                    sizeof(err)) != 0 &&
	           strstr(err, "more than one"),
	   "From with two mailboxes is refused (%s)", err);

	is_str(list("Mitra <mitra@jabarprov.go.id>, ecmitra@jabarprov.go.id",
	            &n),
	       "mitra@jabarprov.go.id ecmitra@jabarprov.go.id",
	       "two mailboxes");
	ok(n == 2, "count 2 (%d)", n);
	is_str(list("\"Pratama, Andi\" <andi@banjarkota.go.id>", &n),
	       "andi@banjarkota.go.id", "comma inside a quoted display name");
	is_str(list("Tim Audit: a@bpk.go.id, B <b@bpk.go.id>;, c@x.id", &n),
	       "a@bpk.go.id b@bpk.go.id c@x.id",
	       "a group and a mailbox after it");
	ok(n == 3, "count 3 (%d)", n);
	is_str(list("undisclosed-recipients:;", &n), "",
	       "an empty group gives nothing");
	ok(n == 0, "count 0 (%d)", n);
	is_str(list("a@b.id (kantor, pusat), <C@D.ID>", &n), "a@b.id c@d.id",
	       "comments with commas, bare angle address");
	is_str(list("<\"x,y\"@b.id>, z@b.id", &n), "\"x,y\"@b.id z@b.id",
	       "comma inside a quoted local part");
	is_str(list("not an address, ,", &n), "", "junk gives nothing");
	ok(n == 0, "junk count 0 (%d)", n);
	ok(addr_list_each(NULL, collect, NULL) == 0, "NULL value");
	{
		/* a From of commas after '<': linear, not one scan for '>'
		 * per comma (4x the input: ~4x the time, quadratic ~16x) */
		double t1 = from_commas_time(100000);
		double t4 = from_commas_time(400000);
		ok(t1 >= 0 && t4 >= 0 &&
		                   t4<8 * (t1 > 1e-6 ? t1 : 1e-6),
		                      "From with 400k commas takes %.1fx the "
		                      "time of 100k "
		                      "(%.6f s, %.6f s; linear ~4, quadratic "
		                      "~16)",
		                      t1> 0
		           ? t4 / t1
		           : 0.0,
		   t1, t4);
	}
	{
		/* the small array and buffer helpers of util.h */
		char **v = NULL;
		size_t cap = 0, nv = 0, have = 0, len = 10;
		unsigned char dst[4];
		const unsigned char *src = (const unsigned char *)"0123456789";
		int grew = 1;

		for (int i = 0; i < 20 && grew; i++) {
			grew = array_grow(&v, &cap, nv, sizeof(*v)) == 0;
			if (grew)
				v[nv++] = xstrdup("x");
		}
		ok(grew && nv == 20 && cap == 32,
		   "array_grow: 20 elements in 8, 16, then 32 (%zu of %zu)",
		   nv, cap);
		strv_free(v, nv); /* ASan/valgrind: every string freed */
		strv_free(NULL, 3);
		ok(buf_fill(dst, &have, sizeof(dst), &src, &len) == 4 &&
		           have == 4 && len == 6 && memcmp(dst, "0123", 4) == 0 &&
		           *src == '4',
		   "buf_fill takes what fits and advances the input");
		ok(buf_fill(dst, &have, sizeof(dst), &src, &len) == 0 &&
		           len == 6,
		   "buf_fill into a full buffer takes nothing");
	}
	{
		/* UTF-8: what PostgreSQL takes as text, and the \xHH escape of
		 * the rest */
		static const struct {
			const char *s;
			size_t len; /* of the first sequence, 0: invalid */
		} u[] = {
			{ "a", 1 },           { "\xc3\xa9", 2 },
			{ "\xe2\x80\x94", 3 },   { "\xf0\x9f\x93\xa7", 4 },
			{ "\xc0\xaf", 0 },      /* overlong '/' */
			{ "\xe0\x80\xaf", 0 },  /* overlong, 3 octets */
			{ "\xed\xa0\x80", 0 },  /* a surrogate */
			{ "\xf4\x90\x80\x80", 0 }, /* past U+10FFFF */
			{ "\xe2\x80", 0 },      /* cut short */
			{ "\xff", 0 },          { "\x80", 0 },
		};
		int good = 1, made = 0;
		const char *e;

		for (size_t i = 0; i < sizeof(u) / sizeof(u[0]); i++)
			if (utf8_len((const unsigned char *)u[i].s,
			             strlen(u[i].s)) != u[i].len) {
				printf("# utf8_len of case %zu\n", i);
				good = 0;
			}
		ok(good, "utf8_len: 1 to 4 octets; overlong, surrogate, past "
		         "U+10FFFF, cut short and stray octets are not UTF-8");
		e = utf8_escape("Dinas \xe2\x80\x94 Kominfo", &made);
		ok(made == 0 && strcmp(e, "Dinas \xe2\x80\x94 Kominfo") == 0,
		   "utf8_escape leaves valid UTF-8 as it is, uncopied");
		e = utf8_escape("\xff\xfe@x.id \xc0\xaf \xc3\xa9\\x", &made);
		ok(made == 1 && e &&
		           strcmp(e, "\\xFF\\xFE@x.id \\xC0\\xAF \xc3\xa9\\x") == 0,
		   "... and writes every other octet as \\xHH (%s)", e);
		if (made)
			free((char *)e);
		ok(utf8_escape(NULL, &made) == NULL && made == 0,
		   "... and NULL is NULL");
	}
	return tap_done();
}
