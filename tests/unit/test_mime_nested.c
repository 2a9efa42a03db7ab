/* Unit tests for the header blocks of nested parts (lib/mime_engine.c,
 * lib/mime_rewrite.c): lines over 998 octets are folded before a blank or
 * refused, a line that is not a field ends the header block (the body
 * starts there), NUL and bare CR in a field are refused, and folding is
 * linear in the length of a line (checked as a ratio of two timings, never
 * an absolute time). */
#include "mime_fixture.h"

/* Every line of o is at most 998 octets and ends in CR LF. */
static int lines_ok(const struct buf *o)
{
	const unsigned char *p = o->p, *e = o->p + o->n;

	while (p < e) {
		const unsigned char *nl = memchr(p, '\n', (size_t)(e - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(e - p);
		if (nl && (len == 0 || p[len - 1] != '\r'))
			return 0;
		if (len - (nl ? 1 : 0) > 998)
			return 0;
		if (nl == NULL)
			break;
		p = nl + 1;
	}
	return 1;
}

/* The value of the field name in o, unfolded (CR LF removed), or NULL. */
static char *field_unfolded(const struct buf *o, const char *name)
{
	const char *m = strstr((const char *)o->p, name), *p;
	struct buf v = { 0 };
	char *r;

	if (m == NULL)
		return NULL;
	for (p = m + strlen(name);; p++) {
		if (p[0] == '\r' && p[1] == '\n') {
			if (p[2] != ' ' && p[2] != '\t')
				break;
			p++;
			continue;
		}
		if (*p == '\0')
			break;
		buf_add(&v, p, 1);
	}
	buf_add(&v, "", 0);
	r = strdup((const char *)v.p);
	buf_free(&v);
	return r;
}

/* The same body fed whole, byte by byte and in random pieces gives the same
 * result (rc, error, entity). */
static int same_fed(const struct buf *b, const struct res *r0)
{
	static const int feeds[] = { FEED_BYTES, FEED_RANDOM, FEED_1000 };
	int same = 1;

	for (size_t i = 0; i < sizeof(feeds) / sizeof(feeds[0]); i++) {
		struct res r;
		struct mime_header h = { "Content-Type",
			                 "multipart/mixed; boundary=b" };
		run_ex(h.value, NULL, &h, 1, b->p, b->n, feeds[i], 7 + (int)i,
		       2, &r);
		if (r.rc != r0->rc || strcmp(r.err, r0->err) != 0 ||
		    r.out.n != r0->out.n ||
		    memcmp(r.out.p, r0->out.p, r.out.n) != 0)
			same = 0;
		buf_free(&r.out);
	}
	return same;
}

#define NOFOLD                                                             \
	"mime: a header line of a nested part is over 998 octets with no " \
	"place to fold it"
#define NULCR "mime: NUL or bare CR in a header line of a nested part"

/* The body (under multipart/mixed; boundary=b) is refused with reason why. */
static int refused(const struct buf *b, const char *why)
{
	struct res r;
	int yes;

	run("multipart/mixed; boundary=b", NULL, b->p, b->n, &r);
	yes = r.rc != 0 && strcmp(r.err, why) == 0;
	if (!yes)
		printf("#   rc %d, error '%s'\n", r.rc, r.err);
	buf_free(&r.out);
	return yes;
}

static void test_long_words(void)
{
	struct buf b = { 0 }, want = { 0 };
	struct res r;
	char *v;

	/* a 1,500-octet Content-Description made of words */
	buf_str(&b, "--b\r\nContent-Type: text/plain\r\n"
	            "Content-Description:");
	buf_str(&want, "");
	while (want.n < 1500) {
		buf_str(&b, " word");
		buf_str(&want, " word");
	}
	buf_add(&want, "", 0);
	buf_str(&b, "\r\n\r\nhello\r\n--b--\r\n");
	run("multipart/mixed; boundary=b", NULL, b.p, b.n, &r);
	ok(r.rc == 0 && lines_ok(&r.out), "words: folded to 998 (%s)", r.err);
	v = field_unfolded(&r.out, "Content-Description:");
	ok(v != NULL && strcmp(v, (const char *)want.p) == 0,
	   "words: the value unfolds unchanged");
	free(v);
	ok(part_text_is(&r.out, "Content-Type: text/plain", "hello", NULL),
	   "words: the part's body is kept");
	ok(same_fed(&b, &r), "words: the same however fed");
	buf_free(&r.out);
	buf_free(&b);
	buf_free(&want);

	/* a continuation line of 1,200 blanks, then a word, then more words:
	 * no all-blank continuation line is made */
	buf_str(&b, "--b\r\nContent-Type: text/plain\r\nX-Pad: a\r\n");
	for (int i = 0; i < 1200; i++)
		buf_add(&b, " ", 1);
	for (int i = 0; i < 300; i++)
		buf_str(&b, "x y ");
	buf_str(&b, "\r\n\r\nhello\r\n--b--\r\n");
	ok(refused(&b, NOFOLD),
	   "blanks: a 1,200-blank continuation cannot be folded: refused");
	buf_free(&b);
}

static void test_long_nofold(void)
{
	struct buf b = { 0 };
	struct res r;

	/* a part header line with nowhere to fold it */
	buf_str(&b, "--b\r\nContent-Type: text/plain\r\nX-Id: ");
	for (int i = 0; i < 1500; i++)
		buf_add(&b, "x", 1);
	buf_str(&b, "\r\n\r\nhello\r\n--b--\r\n");
	run("multipart/mixed; boundary=b", NULL, b.p, b.n, &r);
	ok(r.rc != 0 && strcmp(r.err, NOFOLD) == 0,
	   "no fold point: refused with a reason (%s)", r.err);
	ok(same_fed(&b, &r), "no fold point: the same however fed");
	buf_free(&r.out);

	/* exactly 998 octets: left alone */
	buf_free(&b);
	buf_str(&b, "--b\r\nContent-Type: text/plain\r\nX-Id: ");
	for (int i = 0; i < 998 - 6; i++)
		buf_add(&b, "x", 1);
	buf_str(&b, "\r\n\r\nhello\r\n--b--\r\n");
	run("multipart/mixed; boundary=b", NULL, b.p, b.n, &r);
	ok(r.rc == 0 && !r.needs && lines_ok(&r.out),
	   "998 octets: copied as it is");
	buf_free(&r.out);
	buf_free(&b);
}

static void test_no_blank_line(void)
{
	struct buf b = { 0 }, raw = { 0 }, d = { 0 };
	struct res r;
	struct part pt;

	/* a 5,000-octet base64 line right after the part headers */
	for (int i = 0; i < 3750; i++) {
		unsigned char c = (unsigned char)(i * 7 + 3);
		buf_add(&raw, &c, 1);
	}
	buf_str(&b, "--b\r\nContent-Type: application/octet-stream\r\n"
	            "Content-Transfer-Encoding: base64\r\n");
	{
		static const char a[] =
		        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
		        "qrstuvwxyz0123456789+/";
		for (size_t i = 0; i + 2 < raw.n; i += 3) {
			unsigned v = (unsigned)raw.p[i] << 16 |
			             (unsigned)raw.p[i + 1] << 8 | raw.p[i + 2];
			char q[4] = { a[v >> 18], a[(v >> 12) & 63],
				      a[(v >> 6) & 63], a[v & 63] };
			buf_add(&b, q, 4);
		}
	}
	buf_str(&b, "\r\n--b--\r\n");
	run("multipart/mixed; boundary=b", NULL, b.p, b.n, &r);
	ok(r.rc == 0 && lines_ok(&r.out), "no blank line: lines <= 998 (%s)",
	   r.err);
	ok(strstr((const char *)r.out.p, "base64\r\n\r\n") != NULL,
	   "no blank line: the body starts at the first non-field line");
	ok(find_part(&r.out, "Content-Type: application/octet-stream", &pt) ==
	                   0 &&
	           (decode_part(&pt, &d), d.n == raw.n) &&
	           memcmp(d.p, raw.p, raw.n) == 0,
	   "no blank line: the base64 content is kept");
	ok(same_fed(&b, &r), "no blank line: the same however fed");
	buf_free(&d);
	buf_free(&r.out);
	buf_free(&b);
	buf_free(&raw);
}

static void test_junk(void)
{
	struct buf b = { 0 };
	struct res r;

	/* a line that is not a field ends the header block; its 8bit bytes
	 * are then content, and quoted-printable */
	buf_str(&b, "--b\r\nContent-Type: text/plain\r\n"
	            "X-Ok: 1\r\n"
	            "not a field \xe9\r\n"
	            "Y: 2\r\n"
	            "\r\n"
	            "tail\r\n--b--\r\n");
	run("multipart/mixed; boundary=b", NULL, b.p, b.n, &r);
	ok(r.rc == 0 && r.needs, "junk: rewritten");
	ok(part_text_is(&r.out, "Content-Type: text/plain",
	                "not a field \xe9\nY: 2\n\ntail", "quoted-printable"),
	   "junk: the body starts at the junk line, quoted-printable");
	ok(count((const char *)r.out.p, "X-Ok: 1\r\n"
	                                "Content-Transfer-Encoding: "
	                                "quoted-printable\r\n\r\n") == 1,
	   "junk: the CTE and the blank line end the header block");
	ok(same_fed(&b, &r), "junk: the same however fed");
	buf_free(&r.out);
	buf_free(&b);

	/* in message/rfc822: the inner header block ends the same way */
	buf_str(&b, "--b\r\nContent-Type: message/rfc822\r\n\r\n"
	            "Subject: inner\r\n"
	            "\x01junk\r\n"
	            "text\r\n--b--\r\n");
	run("multipart/mixed; boundary=b", NULL, b.p, b.n, &r);
	ok(r.rc == 0 && clean7(r.out.p, r.out.n, 998) &&
	           strstr((const char *)r.out.p, "Subject: inner\r\n\r\n\x01"
	                                         "junk\r\n") != NULL,
	   "junk: an inner message's body starts at the junk line");
	buf_free(&r.out);
	buf_free(&b);

	/* a continuation line and "Name : value" stay fields */
	buf_str(&b, "--b\r\nContent-Type: text/plain\r\n"
	            "X-A : 1\r\n  more\r\n\r\nbody\r\n--b--\r\n");
	run("multipart/mixed; boundary=b", NULL, b.p, b.n, &r);
	ok(r.rc == 0 && !r.needs, "junk: folded and obs-syntax fields kept");
	buf_free(&r.out);
	buf_free(&b);
}

static void test_nul_cr(void)
{
	static const struct {
		const char *hdr;
		size_t n;
		const char *what;
	} cases[] = {
		{ "X-A: a\0b\r\n", 11, "NUL" },
		{ "X-A: a\rb\r\n", 10, "bare CR" },
		{ "X-A: a\r\n b\0\r\n", 13, "NUL in a continuation" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf b = { 0 };
		struct res r;
		buf_str(&b, "--b\r\nContent-Type: text/plain\r\n");
		buf_add(&b, cases[i].hdr, cases[i].n);
		buf_str(&b, "\r\nbody\r\n--b--\r\n");
		run("multipart/mixed; boundary=b", NULL, b.p, b.n, &r);
		ok(r.rc != 0 && strcmp(r.err, NULCR) == 0,
		   "%s in a nested field: refused with a reason",
		   cases[i].what);
		ok(same_fed(&b, &r), "%s: the same however fed", cases[i].what);
		buf_free(&r.out);
		buf_free(&b);
	}
}

/* A multipart whose boundary never appears: its body is the preamble and
 * its close delimiter is written, before the outer delimiter when nested.
 * Sendmail's MIME walk (MaxMimeHeaderLength) would otherwise write the
 * inner delimiter over the outer one after signing. */
static void test_no_delimiter(void)
{
	struct buf b = { 0 };
	struct res r;

	buf_str(&b, "--b\r\nContent-Type: multipart/mixed; boundary=\"in\"\r\n"
	            "\r\n--other\r\n\r\ntext\r\n--other--\r\n"
	            "--b\r\nContent-Type: text/plain\r\n\r\nlast\r\n--b--\r\n");
	run("multipart/mixed; boundary=b", NULL, b.p, b.n, &r);
	ok(r.rc == 0 && r.needs &&
	           strstr((const char *)r.out.p,
	                  "\r\n--other--\r\n--in--\r\n--b\r\n") != NULL,
	   "no delimiter: the inner close delimiter comes before the outer "
	   "delimiter");
	ok(part_text_is(&r.out, "Content-Type: text/plain", "last", NULL),
	   "no delimiter: the next part is unchanged");
	ok(same_fed(&b, &r), "no delimiter: the same however fed");
	buf_free(&r.out);
	buf_free(&b);

	/* at the top level: the entity ends with the close delimiter */
	buf_str(&b, "--other\r\n\r\ntext\r\n--other--\r\n");
	run("multipart/mixed; boundary=b", NULL, b.p, b.n, &r);
	ok(r.rc == 0 && ends_with(&r.out, "--other--\r\n--b--"),
	   "no delimiter: the top-level entity ends with its close delimiter");
	buf_free(&r.out);
	buf_free(&b);
}

/* Under multipart/mixed; boundary=b: n multiparts nested in each other
 * (counting the outermost, whose boundary is b; then b1, b2, ...), a text
 * leaf at the bottom. */
static void nest(struct buf *b, int n)
{
	char line[128], bn[16];

	for (int i = 0; i < n; i++) {
		snprintf(bn, sizeof(bn), i ? "b%d" : "b", i);
		if (i + 1 < n)
			snprintf(line, sizeof(line),
			         "--%s\r\nContent-Type: multipart/mixed; "
			         "boundary=b%d\r\n\r\n",
			         bn, i + 1);
		else
			snprintf(line, sizeof(line),
			         "--%s\r\nContent-Type: text/plain\r\n\r\n"
			         "bottom\r\n",
			         bn);
		buf_str(b, line);
	}
	for (int i = n - 1; i >= 0; i--) {
		snprintf(bn, sizeof(bn), i ? "b%d" : "b", i);
		snprintf(line, sizeof(line), "--%s--\r\n", bn);
		buf_str(b, line);
	}
}

/* Under multipart/mixed; boundary=b: a multipart with a boundary of n
 * q's holding one part (X-P: 1, text x). */
static void long_bnd(struct buf *b, size_t n)
{
	char bnd[200];

	memset(bnd, 'q', n);
	bnd[n] = '\0';
	buf_str(b, "--b\r\nContent-Type: multipart/mixed; boundary=");
	buf_str(b, bnd);
	buf_str(b, "\r\n\r\n--");
	buf_str(b, bnd);
	buf_str(b, "\r\nX-P: 1\r\n\r\nx\r\n--");
	buf_str(b, bnd);
	buf_str(b, "--\r\n--b--\r\n");
}

#define DEEP                                                               \
	"mime: multiparts nested more than 19 deep: Sendmail's MIME walk " \
	"would rewrite them after signing"
#define NOBND                                                         \
	"mime: a multipart without a boundary: Sendmail's MIME walk " \
	"would rewrite it after signing"
#define LONGBND                                                             \
	"mime: a multipart boundary over 127 octets: Sendmail's MIME walk " \
	"would rewrite it after signing"

/* What Sendmail's MIME walk (MaxMimeHeaderLength, on by default) would
 * rewrite after signing is refused; what it leaves alone is signed. */
static void test_sendmail_walk(void)
{
	struct buf b = { 0 };
	struct res r;

	nest(&b, 19);
	run("multipart/mixed; boundary=b", NULL, b.p, b.n, &r);
	ok(r.rc == 0 && part_text_is(&r.out, "Content-Type: text/plain",
	                             "bottom", NULL),
	   "walk: 19 nested multiparts (20 with multipart/signed) are signed");
	buf_free(&r.out);
	buf_free(&b);
	nest(&b, 20);
	ok(refused(&b, DEEP), "walk: 20 nested multiparts refused");
	buf_free(&b);

	buf_str(&b, "--b\r\nContent-Type: multipart/mixed\r\n\r\n"
	            "--x\r\n\r\ntext\r\n--x--\r\n--b--\r\n");
	ok(refused(&b, NOBND), "walk: a nested multipart without a boundary");
	buf_free(&b);
	buf_str(&b, "--b\r\nContent-Type: multipart/mixed\r\n"
	            "Content-Transfer-Encoding: base64\r\n\r\n"
	            "dGV4dA==\r\n--b--\r\n");
	run("multipart/mixed; boundary=b", NULL, b.p, b.n, &r);
	ok(r.rc == 0, "walk: without a boundary but base64 (not walked)");
	buf_free(&r.out);
	buf_free(&b);

	long_bnd(&b, 128);
	ok(refused(&b, LONGBND), "walk: a boundary of 128 octets refused");
	buf_free(&b);
	long_bnd(&b, 127);
	run("multipart/mixed; boundary=b", NULL, b.p, b.n, &r);
	ok(r.rc == 0 && part_text_is(&r.out, "X-P: 1", "x", NULL),
	   "walk: a boundary of 127 octets is signed");
	buf_free(&r.out);
	buf_free(&b);

	/* transport padding goes: Sendmail writes "--" boundary alone */
	buf_str(&b, "--b \t\r\n\r\nx\r\n--b-- \r\n");
	run("multipart/mixed; boundary=b", NULL, b.p, b.n, &r);
	ok(r.rc == 0 && r.needs &&
	           !strcmp(body_of(&r.out), "--b\r\n\r\nx\r\n--b--"),
	   "walk: delimiters written without their transport padding");
	ok(same_fed(&b, &r), "walk: the same however fed");
	buf_free(&r.out);
	buf_free(&b);
}

/* CPU seconds for reps runs of body (a failing or passing rewrite). */
static double cpu_run(const char *ct, const struct mime_header *h, size_t nh,
                      const struct buf *body, int reps)
{
	clock_t t0 = clock();

	for (int i = 0; i < reps; i++) {
		struct res r;
		run_ex(ct, NULL, h, nh, body->p, body->n, FEED_ALL, 1, 0, &r);
		buf_free(&r.out);
	}
	return (double)(clock() - t0) / CLOCKS_PER_SEC;
}

/* Time for n and 4n: the ratio is about 4 when linear, 16 when quadratic.
 * The repetitions grow until the smaller input takes 50 ms. */
static double ratio(double (*mk)(size_t n, int reps), size_t n)
{
	int reps = 1;
	double t1, t4;

	while ((t1 = mk(n, reps)) < 0.05 && reps < (1 << 20))
		reps *= 2;
	t4 = mk(4 * n, reps);
	return t1 > 0 ? t4 / t1 : 0;
}

/* Top-level Content-* continuation lines that start with n blanks (n up to
 * 998: the old search was quadratic in the blanks before the fold point),
 * 40 of them, each with a word too long to fold: the rewrite fails, as it
 * must. */
static double top_blanks(size_t n, int reps)
{
	struct buf v = { 0 }, body = { 0 };
	struct mime_header h[40];
	double t;

	buf_str(&v, "x");
	for (int k = 0; k < 40; k++) {
		buf_str(&v, "\r\n");
		for (size_t i = 0; i < n; i++)
			buf_add(&v, " ", 1);
		for (size_t i = 0; i < 1000; i++)
			buf_add(&v, "y", 1);
	}
	buf_add(&v, "", 0);
	for (int k = 0; k < 40; k++) {
		h[k].name = "Content-Description";
		h[k].value = (const char *)v.p;
	}
	buf_str(&body, "hello\r\n");
	t = cpu_run(NULL, h, 40, &body, reps);
	buf_free(&v);
	buf_free(&body);
	return t;
}

/* A nested header line of n octets made of blanks and words. */
static double nested_words(size_t n, int reps)
{
	struct buf b = { 0 };
	struct mime_header h = { "Content-Type",
		                 "multipart/mixed; boundary=b" };
	double t;

	buf_str(&b, "--b\r\nContent-Type: text/plain\r\nX-W: ");
	for (size_t i = 0; i < n / 8; i++)
		buf_str(&b, "       w");
	buf_str(&b, "\r\n\r\nhello\r\n--b--\r\n");
	t = cpu_run(h.value, &h, 1, &b, reps);
	buf_free(&b);
	return t;
}

static void test_linear(void)
{
	double r1 = ratio(top_blanks, 240), r2 = ratio(nested_words, 200000);

	ok(r1 > 0 && r1 < 8,
	   "top-level fold: 4x the blanks cost %.1fx (linear: ~1-4, was ~16)",
	   r1);
	ok(r2 > 0 && r2 < 8,
	   "nested fold: a 4x longer line costs %.1fx (linear: ~4)", r2);
}

int main(void)
{
	test_long_words();
	test_long_nofold();
	test_no_blank_line();
	test_junk();
	test_nul_cr();
	test_no_delimiter();
	test_sendmail_walk();
	test_linear();
	final_checks(0);
	return tap_done();
}
