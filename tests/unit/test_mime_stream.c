/* Unit tests for lib/mime_*.c as a stream: chunking invariance, big
 * header blocks and huge lines, limits, the identity copy against the
 * engine, error paths, two rewrites of one scan, the base64 writers, a
 * random-message run, output chunk sizes.  MIME_BENCH=1 also prints
 * throughput figures.  Encodings and structure: test_mime.c. */
#include "mime_fixture.h"

/* Build a message that exercises most paths. */
static void complex_body(struct buf *b)
{
	buf_str(b,
	        "This is a preamble with \xc3\xbcmlaut\r\n"
	        "--==outer\r\n"
	        "X-Part: t1\r\n"
	        "Content-Type: text/plain; charset=utf-8\r\n"
	        "Content-Transfer-Encoding: 8bit\r\n"
	        "\r\n"
	        "Gr\xc3\xbc\xc3\x9f"
	        "e\r\nFrom me\r\nbare \r CR \r\n"
	        "--==outer\r\n"
	        "X-Part: alt\r\n"
	        "Content-Type: multipart/alternative;\r\n boundary=\"in\"\r\n"
	        "\r\n"
	        "--in\r\n"
	        "X-Part: qp\r\n"
	        "Content-Type: text/plain\r\n"
	        "Content-Transfer-Encoding: quoted-printable\r\n"
	        "\r\n");
	for (int i = 0; i < 150; i++)
		buf_str(b, i % 5 ? "ab=C3=BCcd " : "x\xe9y=3D  ");
	buf_str(b, "tail   \r\nsoft=\r\nend\r\n"
	           "--in\r\n"
	           "X-Part: b64\r\n"
	           "Content-Type: image/png\r\n"
	           "Content-Transfer-Encoding: base64\r\n"
	           "\r\n");
	for (int i = 0; i < 300; i++)
		buf_str(b, "QUJDREVG");
	buf_str(b, "\xff\r\n--in--\r\n"
	           "--==outer\r\n"
	           "X-Part: msg\r\n"
	           "Content-Type: message/rfc822\r\n"
	           "\r\n"
	           "Subject: inner\r\n"
	           "Content-Type: text/plain\r\n"
	           "\r\n");
	buf_add(b, "inner body with \0 NUL\n", 22);
	buf_str(b, "--==outer\r\n"
	           "X-Part: bin\r\n"
	           "Content-Type: application/octet-stream\r\n"
	           "Content-Transfer-Encoding: binary\r\n"
	           "\r\n");
	for (int k = 0; k < 3; k++)
		for (int i = 0; i < 256; i++) {
			unsigned char c = (unsigned char)i;
			buf_add(b, &c, 1);
		}
	buf_str(b, "\r\n--==outer--\r\n\r\n");
}

static void test_chunking(void)
{
	struct buf body = { 0 };
	struct res ref, r;
	int same_feed = 1, same_read = 1;
	static const int feeds[] = { FEED_BYTES, FEED_RANDOM, FEED_RANDOM,
		                     FEED_RANDOM, FEED_1000 };
	struct mime_header h[1] = {
		{ "Content-Type", "multipart/mixed; boundary=\"==outer\"" }
	};

	complex_body(&body);
	run_ex(h[0].value, NULL, h, 1, body.p, body.n, FEED_ALL, 1, 0, &ref);
	ok(ref.rc == 0 && ref.needs == 1 && ref.parts == 5,
	   "chunks: reference run (%zu parts)", ref.parts);
	ok(clean7(ref.out.p, ref.out.n, 998), "chunks: output 7-bit");
	ok(part_text_is(&ref.out, "X-Part: t1",
	                "Gr\xc3\xbc\xc3\x9f"
	                "e\nFrom me\nbare \r CR ",
	                "quoted-printable"),
	   "chunks: 8bit part with bare CR");
	{
		/* what a decoder made of the original QP part */
		struct part pt;
		struct buf orig = { 0 }, dec = { 0 };
		const char *s = strstr((char *)body.p, "X-Part: qp");
		const char *bs = strstr(s, "\r\n\r\n") + 4;
		const char *be = strstr(bs, "\r\n--in");
		qp_decode(bs, (size_t)(be - bs), &orig);
		find_part(&ref.out, "X-Part: qp", &pt);
		decode_part(&pt, &dec);
		ok(!strcmp(pt.cte, "quoted-printable") && dec.n == orig.n &&
		           !memcmp(dec.p, orig.p, dec.n) &&
		           max_line(pt.body, pt.blen) <= 76,
		   "chunks: QP part re-wrapped, same decoded bytes");
		buf_free(&orig);
		buf_free(&dec);
		find_part(&ref.out, "X-Part: b64", &pt);
		s = strstr((char *)body.p, "X-Part: b64");
		bs = strstr(s, "\r\n\r\n") + 4;
		be = strstr(bs, "\r\n--in");
		b64_decode(bs, (size_t)(be - bs), &orig);
		decode_part(&pt, &dec);
		ok(dec.n == orig.n && !memcmp(dec.p, orig.p, dec.n) &&
		           max_line(pt.body, pt.blen) == 76,
		   "chunks: base64 part re-wrapped, same decoded bytes");
		buf_free(&orig);
		buf_free(&dec);
	}
	ok(part_is(&ref.out, "Subject: inner", "inner body with \0 NUL", 21,
	           "quoted-printable"),
	   "chunks: NUL in message/rfc822 body");
	ok(ends_with(&ref.out, "\r\n--==outer--"),
	   "chunks: blank epilogue dropped");
	ok(strstr((char *)ref.out.p,
	          "\r\n\r\nThis is a preamble with =C3=BCmlaut"
	          "\r\n--==outer\r\n") != NULL,
	   "chunks: 8bit preamble escaped");

	for (size_t i = 0; i < sizeof(feeds) / sizeof(feeds[0]); i++) {
		run_ex(h[0].value, NULL, h, 1, body.p, body.n, feeds[i],
		       (unsigned)(i * 77 + 3), 0, &r);
		if (r.rc != 0 || r.needs != ref.needs || r.parts != ref.parts ||
		    r.bytes != ref.bytes || r.out.n != ref.out.n ||
		    memcmp(r.out.p, ref.out.p, r.out.n) != 0)
			same_feed = 0;
		buf_free(&r.out);
	}
	ok(same_feed, "chunks: byte-by-byte and random pass-1 feeds agree");
	for (int mode = 1; mode <= 2; mode++) {
		run_ex(h[0].value, NULL, h, 1, body.p, body.n, FEED_RANDOM,
		       (unsigned)mode, mode, &r);
		if (r.rc != 0 || r.out.n != ref.out.n ||
		    memcmp(r.out.p, ref.out.p, r.out.n) != 0)
			same_read = 0;
		buf_free(&r.out);
	}
	ok(same_read, "chunks: byte-by-byte and random pass-2 reads agree");

	/* CR LF split across chunks everywhere: also covered by FEED_BYTES;
	 * LF-only body gives the same entity as its CRLF form */
	{
		struct buf lf = { 0 };
		for (size_t i = 0; i < body.n; i++)
			if (!(body.p[i] == '\r' && i + 1 < body.n &&
			      body.p[i + 1] == '\n'))
				buf_add(&lf, body.p + i, 1);
		run_ex(h[0].value, NULL, h, 1, lf.p, lf.n, FEED_RANDOM, 5, 2,
		       &r);
		ok(r.rc == 0 && r.out.n == ref.out.n &&
		           !memcmp(r.out.p, ref.out.p, r.out.n),
		   "chunks: LF-only body gives the same entity");
		buf_free(&r.out);
		buf_free(&lf);
	}
	buf_free(&ref.out);
	buf_free(&body);
}

static void test_big_headers(void)
{
	struct buf b = { 0 };
	struct res r;
	double t0 = now();

	buf_str(&b, "--b\r\nX-Part: big\r\n");
	for (int i = 0; i < 10000; i++) {
		char line[64];

		snprintf(line, sizeof(line), "X-Filler-%d: value %d\r\n", i, i);
		buf_str(&b, line);
	}
	buf_str(&b, "Content-Transfer-Encoding:\r\n 8bit\r\n"
	            "Content-Type: text/plain;\r\n charset=utf-8\r\n"
	            "Content-Transfer-Encoding: binary\r\n"
	            "\r\nGr\xc3\xbc\xc3\x9f"
	            "e\r\n--b--\r\n");
	run("multipart/mixed; boundary=b", NULL, b.p, b.n, &r);
	ok(r.rc == 0 && count((char *)r.out.p, "X-Filler-") == 10000,
	   "headers: 10,000 header lines kept");
	ok(part_text_is(&r.out, "X-Part: big",
	                "Gr\xc3\xbc\xc3\x9f"
	                "e",
	                "quoted-printable") &&
	           count((char *)r.out.p, "Content-Transfer-Encoding") == 1 &&
	           !strstr((char *)r.out.p, " 8bit") &&
	           !strstr((char *)r.out.p, "binary"),
	   "headers: folded CTE at the end replaced, duplicates dropped");
	ok(now() - t0 < 30, "headers: fast enough");
	buf_free(&r.out);

	/* a single 2 MB header line in a part */
	buf_free(&b);
	buf_str(&b, "--b\r\nX-Part: h\r\nX-Long: ");
	for (int i = 0; i < 2 * 1024 * 1024; i++)
		buf_add(&b, "h", 1);
	buf_str(&b, "\r\nContent-Type: text/plain\r\n\r\nbody\r\n--b--\r\n");
	run("multipart/mixed; boundary=b", NULL, b.p, b.n, &r);
	ok(r.rc != 0 && strstr(r.err, "no place to fold") != NULL,
	   "headers: 2 MB header line with no blank refused (%s)", r.err);
	buf_free(&r.out);

	/* the same made of words: streamed and folded */
	buf_free(&b);
	buf_str(&b, "--b\r\nX-Part: h\r\nX-Long: ");
	for (int i = 0; i < 256 * 1024; i++)
		buf_add(&b, "hhhhhhh ", 8);
	buf_str(&b, "\r\nContent-Type: text/plain\r\n\r\nbody\r\n--b--\r\n");
	run("multipart/mixed; boundary=b", NULL, b.p, b.n, &r);
	ok(r.rc == 0 && r.out.n > 2 * 1024 * 1024 &&
	           max_line((const char *)r.out.p, r.out.n) <= 998 &&
	           part_text_is(&r.out, "Content-Type: text/plain", "body",
	                        NULL),
	   "headers: 2 MB header line streamed, folded to 998");
	buf_free(&r.out);
	buf_free(&b);
}

static void test_huge_line(void)
{
	struct buf b = { 0 };
	struct res r;
	const size_t n = 5 * 1024 * 1024;
	double t0, t1;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)('a' + i % 26);
		if (i % 1000 == 999)
			c = 0xe9;
		buf_add(&b, &c, 1);
	}
	t0 = now();
	run_ex("text/plain; charset=latin1", NULL, NULL, 0, b.p, b.n, FEED_64K,
	       1, 0, &r);
	t1 = now();
	ok(r.rc == 0 && r.needs == 1, "huge: 5 MB single line rewritten");
	ok(t1 - t0 < 30, "huge: done in %.2f s", t1 - t0);
	ok(clean7(r.out.p, r.out.n, 76), "huge: QP lines <= 76");
	{
		struct buf d = { 0 };
		const char *s = body_of(&r.out);
		qp_decode(s, strlen(s), &d);
		ok(d.n == b.n && !memcmp(d.p, b.p, d.n), "huge: decodes back");
		buf_free(&d);
	}
	ok(r.out.maxw <= 65536 && r.out.calls > 10,
	   "huge: output chunks <= 64 KiB (max %zu, %zu calls)", r.out.maxw,
	   r.out.calls);
	buf_free(&r.out);

	/* same line as a binary attachment */
	t0 = now();
	run_ex("application/octet-stream", "binary", NULL, 0, b.p, b.n,
	       FEED_1000, 1, 0, &r);
	{
		struct buf d = { 0 };
		const char *s = body_of(&r.out);
		b64_decode(s, strlen(s), &d);
		ok(r.rc == 0 && d.n == b.n && !memcmp(d.p, b.p, d.n) &&
		           now() - t0 < 30,
		   "huge: 5 MB binary line -> base64 round trip");
		buf_free(&d);
	}
	buf_free(&r.out);
	buf_free(&b);
}

/* mime_scan_identity and the copy it allows */
/* Clean bodies (a multipart with its delimiters, a text leaf) fed in
 * every chunking: each is an identity run, and run_ex checks the copy
 * against the engine's output every time. */
static void test_identity_feeds(void)
{
	static const char *const bodies[] = {
		"--b1\r\nContent-Type: text/plain\r\n\r\nsatu\r\n--b1--\r\n",
		"pre\r\n--b1\r\n\r\nsatu\r\n--b1\r\n\r\ndua\r\n--b1--",
		"--b1\r\nContent-Type: multipart/alternative; "
		"boundary=b2\r\n\r\n"
		"--b2\r\n\r\na\r\n--b2--\r\n--b1--\r\n",
		"--b1\r\nContent-Type: message/rfc822\r\n\r\nSubject: x\r\n\r\n"
		"body\r\n--b1--\r\nepilog\r\n",
		"--b1\r\nContent-Transfer-Encoding: "
		"base64\r\n\r\nQUJD\r\n--b1--"
		"\r\n\r\n",
	};
	static const int feeds[] = { FEED_ALL, FEED_BYTES, FEED_RANDOM,
		                     FEED_64K, FEED_1000 };
	struct mime_header h = { "Content-Type",
		                 "multipart/mixed; boundary=b1" };
	int bad = 0;

	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
		for (size_t k = 0; k < sizeof(feeds) / sizeof(feeds[0]); k++) {
			struct res r;
			run_ex(h.value, NULL, &h, 1,
			       (const unsigned char *)bodies[i],
			       strlen(bodies[i]), feeds[k], 3 + (unsigned)k,
			       (int)k % 3, &r);
			if (r.rc != 0 || r.needs)
				bad++;
			buf_free(&r.out);
		}
	ok(bad == 0,
	   "identity: clean multiparts in every chunking need no "
	   "rewrite (%d did)",
	   bad);
}

static void test_identity(void)
{
	static const char mp[] =
	        "--b1\r\nContent-Type: text/plain\r\n\r\nlampiran\r\n"
	        "--b1\r\nContent-Type: application/octet-stream\r\n"
	        "Content-Transfer-Encoding: base64\r\n\r\nQUJDRA==\r\n--b1--";
	const char *ct = "multipart/mixed; boundary=\"b1\"";
	struct {
		const char *tail, *ct, *what;
		int ident;
		size_t cut; /* octets of the body not written */
	} c[] = {
		{ "\r\n", NULL, "close delimiter, CR LF", 1, 2 },
		{ "", NULL, "close delimiter at the very end", 1, 0 },
		{ "\r\n\r\n \t\r\n", NULL, "blank epilogue dropped", 1, 8 },
		{ "\r\nepilog\r\n", NULL, "epilogue with text kept", 1, 0 },
		{ "\n", NULL, "a bare LF at the end", 0, 0 },
		{ "\r\n\xe9\r\n", NULL, "an 8bit epilogue (escaped)", 0, 0 },
		{ "\r\n", "text/plain", "a 7bit text leaf", 1, 0 },
	};
	char err[256];

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		struct buf body = { .fail_after = -1 },
		           want = { .fail_after = -1 };
		struct mime_header h = { "Content-Type",
			                 c[i].ct ? c[i].ct : ct };
		struct res r;
		struct mime_scan *s = mime_scan_new(h.value, NULL);

		buf_str(&body, mp);
		buf_str(&body, c[i].tail);
		mime_scan_feed(s, body.p, body.n, err, sizeof(err));
		mime_scan_finish(s, err, sizeof(err));
		ok(mime_scan_identity(s) == c[i].ident, "identity: %s -> %d",
		   c[i].what, c[i].ident);
		mime_scan_free(s);
		run_ex(h.value, NULL, &h, 1, body.p, body.n, FEED_RANDOM, 3, 2,
		       &r);
		if (c[i].ident) {
			buf_str(&want, "Content-Type: ");
			buf_str(&want, h.value);
			buf_str(&want, "\r\n\r\n");
			buf_add(&want, body.p, body.n - c[i].cut);
			ok(r.rc == 0 && r.out.n == want.n &&
			           memcmp(r.out.p, want.p, want.n) == 0,
			   "identity: %s: the entity is the headers and the "
			   "body "
			   "octets%s",
			   c[i].what,
			   c[i].cut ? " up to the close "
			              "delimiter"
			            : "");
		}
		buf_free(&r.out);
		buf_free(&want);
		buf_free(&body);
	}
	/* the copy checks the length of what it reads again */
	{
		struct mime_scan *s = mime_scan_new("text/plain", NULL);
		struct buf out = { .fail_after = -1 };
		struct src src = { .p = (const unsigned char *)"abc\r\n",
			           .n = 4 };
		mime_scan_feed(s, (const unsigned char *)"abc\r\n", 5, err,
		               sizeof(err));
		mime_scan_finish(s, err, sizeof(err));
		ok(mime_scan_identity(s) &&
		           mime_rewrite(s, NULL, 0, src_read, &src, sink, &out,
		                        err, sizeof(err)) == -1 &&
		           strstr(err, "changed") != NULL,
		   "identity: a body shorter in pass 2 is an error (%s)", err);
		buf_free(&out);
		mime_scan_free(s);
	}
}

/* mime_rewrite of s from body[0..n) (a reader that fails when fail is
 * set) into out (a sink that fails after fail_after calls, unless < 0). */
static int rewrite_from(const struct mime_scan *s, const unsigned char *body,
                        size_t n, int fail, struct buf *out, long fail_after,
                        char *err, size_t errlen)
{
	struct src src;

	memset(&src, 0, sizeof(src));
	src.p = body;
	src.n = n;
	src.fail = fail;
	out->fail_after = fail_after;
	return mime_rewrite(s, NULL, 0, src_read, &src, sink, out, err, errlen);
}

static void test_errors(void)
{
	struct mime_scan *s = mime_scan_new("text/plain", NULL);
	const unsigned char body[] = "hello\n";
	char err[128] = "";
	struct buf out = { 0 };
	struct src src;

	mime_scan_feed(s, body, 6, err, sizeof(err));
	ok(mime_rewrite(s, NULL, 0, src_read, &src, sink, &out, err,
	                sizeof(err)) == -1,
	   "errors: rewrite before finish refused");
	mime_scan_finish(s, err, sizeof(err));
	ok(mime_scan_feed(s, body, 6, err, sizeof(err)) == -1,
	   "errors: feed after finish refused");
	ok(rewrite_from(s, body, 6, 1, &out, -1, err, sizeof(err)) == -1,
	   "errors: reader failure reported");
	ok(rewrite_from(s, body, 6, 0, &out, 0, err, sizeof(err)) == -1,
	   "errors: writer failure reported");
	ok(rewrite_from(s, body, 5, 0, &out, -1, err, sizeof(err)) == -1,
	   "errors: shorter body in pass 2 detected (%s)", err);
	mime_scan_free(s);
	mime_scan_free(NULL);
	buf_free(&out);

	/* structure changed between passes (the parser notices; the identity
	 * copy only compares the length, so it is switched off here) */
	s = mime_scan_new("multipart/mixed; boundary=b", NULL);
	mime_scan_feed(s, (const unsigned char *)"--b\r\n\r\nx\r\n--b--\r\n",
	               17, err, sizeof(err));
	mime_scan_finish(s, err, sizeof(err));
	mime_scan_fastpath(s, 0);
	memset(&src, 0, sizeof(src));
	src.p = (const unsigned char *)"--b\r\n\r\nx\r\n--b--\r\n";
	src.alt = (const unsigned char *)"--b\r\n\r\nx\r\n--b\r\n\r\n";
	src.n = 17;
	out.fail_after = -1;
	ok(mime_rewrite(s, NULL, 0, src_read, &src, sink, &out, err,
	                sizeof(err)) == -1,
	   "errors: changed structure detected (%s)", err);
	mime_scan_free(s);
	buf_free(&out);
}

/* The caller digests one run and sends another: both must be identical. */
static void test_twice(void)
{
	struct buf body = { 0 }, o1 = { 0 }, o2 = { 0 };
	struct mime_scan *s;
	struct src src;
	char err[128];
	struct mime_header h[1] = {
		{ "Content-Type", "multipart/mixed; boundary=\"==outer\"" }
	};
	int rc;

	complex_body(&body);
	s = mime_scan_new(h[0].value, NULL);
	mime_scan_feed(s, body.p, body.n, err, sizeof(err));
	mime_scan_finish(s, err, sizeof(err));
	o1.fail_after = o2.fail_after = -1;
	memset(&src, 0, sizeof(src));
	src.p = body.p;
	src.n = body.n;
	rc = mime_rewrite(s, h, 1, src_read, &src, sink, &o1, err, sizeof(err));
	memset(&src, 0, sizeof(src));
	src.p = body.p;
	src.n = body.n;
	src.mode = 2;
	rc |= mime_rewrite(s, h, 1, src_read, &src, sink, &o2, err,
	                   sizeof(err));
	ok(rc == 0 && o1.n == o2.n && o1.n > 0 && !memcmp(o1.p, o2.p, o1.n),
	   "twice: two rewrites of one scan are identical");
	mime_scan_free(s);
	buf_free(&o1);
	buf_free(&o2);
	buf_free(&body);
}

static void test_limits(void)
{
	struct buf b = { 0 };
	struct res r;
	char line[128];
	double t0 = now();

	/* 100 levels of nesting, 8bit at the bottom */
	for (int i = 0; i < 100; i++) {
		snprintf(line, sizeof(line),
		         "--b%d\r\nContent-Type: multipart/mixed; "
		         "boundary=b%d\r\n"
		         "\r\n",
		         i, i + 1);
		buf_str(&b, line);
	}
	buf_str(&b, "--b100\r\nContent-Type: text/plain\r\n\r\n\xe9t\xe9\r\n");
	for (int i = 100; i >= 0; i--) {
		snprintf(line, sizeof(line), "--b%d--\r\n", i);
		buf_str(&b, line);
	}
	run("multipart/mixed; boundary=b0", NULL, b.p, b.n, &r);
	ok(r.rc != 0 && strstr(r.err, "nested more than 19 deep"),
	   "limits: 100 nested multiparts refused (Sendmail's walk nests 20 "
	   "with multipart/signed)");
	buf_free(&r.out);
	buf_free(&b);

	/* 20,000 parts, 8bit in the last ones */
	for (int i = 0; i < 20000; i++) {
		snprintf(line, sizeof(line), "--b\r\n\r\npart %d%s\r\n", i,
		         i > 19990 ? " \xe9" : "");
		buf_str(&b, line);
	}
	buf_str(&b, "--b--\r\n");
	run("multipart/mixed; boundary=b", NULL, b.p, b.n, &r);
	ok(r.rc == 0 && r.parts <= 10000 && r.parts > 9000 &&
	           clean7(r.out.p, r.out.n, 998),
	   "limits: 20,000 parts capped (%zu), output 7-bit", r.parts);
	ok(now() - t0 < 30, "limits: fast enough");
	buf_free(&r.out);
	buf_free(&b);
}

static void test_b64write(void)
{
	struct buf o = { 0 };
	unsigned char d[58];

	o.fail_after = -1;
	ok(mime_base64_write((const unsigned char *)"", 0, sink, &o) == 0 &&
	           o.n == 0,
	   "b64write: empty input writes nothing");
	ok(mime_base64_write((const unsigned char *)"abc", 3, sink, &o) == 0,
	   "b64write: ok");
	is_str((char *)o.p, "YWJj\r\n", "b64write: abc");
	buf_free(&o);
	o.fail_after = -1;
	memset(d, 0xff, sizeof(d));
	mime_base64_write(d, 57, sink, &o);
	ok(o.n == 78 && max_line((char *)o.p, o.n) == 76,
	   "b64write: 57 bytes is one full line");
	buf_free(&o);
	o.fail_after = -1;
	mime_base64_write(d, 58, sink, &o);
	ok(o.n == 78 + 6 && !strcmp((char *)o.p + 78, "/w==\r\n"),
	   "b64write: 58 bytes is two lines, padded");
	buf_free(&o);
}

/* Random messages built from interesting pieces: never crash, and the
 * result does not depend on chunking. */
static void test_fuzz(void)
{
	static const char *pieces[] = {
		"--a\r\n",
		"--a--\r\n",
		"--b\r\n",
		"--b--  \r\n",
		"\r\n",
		"\n",
		"Content-Type: multipart/mixed; boundary=b\r\n",
		"Content-Type: multipart/mixed; boundary=a\r\n",
		"Content-Type: message/rfc822\r\n",
		"Content-Type: text/plain\r\n",
		"Content-Type: image/png\r\n",
		"Content-Transfer-Encoding: 8bit\r\n",
		"Content-Transfer-Encoding: base64\r\n",
		"Content-Transfer-Encoding: quoted-printable\r\n",
		" folded\r\n",
		"text \xe9\xe8\r\n",
		"\x00\r",
		"\r",
		"=",
		"=4",
		"=\r\n",
		"  \t",
		"From x\r\n",
		"-",
		"--",
		"abc",
		"QUJD\r\n",
	};
	unsigned seed = 12345;
	int bad = 0, fails = 0;

	for (int it = 0; it < 300; it++) {
		struct buf b = { 0 };
		struct res r1, r2;
		int np = 1 + (int)(rnd_next(&seed) % 120);
		for (int i = 0; i < np; i++) {
			const char *p =
			        pieces[rnd_next(&seed) %
			               (sizeof(pieces) / sizeof(pieces[0]))];
			buf_add(&b, p, p[0] ? strlen(p) : 2);
			if (rnd_next(&seed) % 40 == 0)
				for (int k = 0; k < 1200; k++)
					buf_add(&b, "z", 1);
		}
		run_ex("multipart/mixed; boundary=a", NULL, NULL, 0, b.p, b.n,
		       FEED_ALL, 1, 0, &r1);
		run_ex("multipart/mixed; boundary=a", NULL, NULL, 0, b.p, b.n,
		       FEED_RANDOM, (unsigned)it, 2, &r2);
		if (r1.rc != 0 || r2.rc != 0) {
			/* refused: a nested header line that cannot be
			 * signed, and for the same reason however fed */
			if (r1.rc == 0 || r2.rc == 0 ||
			    strcmp(r1.err, r2.err) != 0 ||
			    strstr(r1.err, "of a nested part") == NULL) {
				fails++;
				printf("# fail: %d %d %s / %s\n", r1.rc, r2.rc,
				       r1.err, r2.err);
			}
		} else if (r1.out.n != r2.out.n ||
		           memcmp(r1.out.p, r2.out.p, r1.out.n) != 0 ||
		           r1.needs != r2.needs || r1.parts != r2.parts)
			bad++;
		buf_free(&r1.out);
		buf_free(&r2.out);
		buf_free(&b);
	}
	ok(fails == 0, "fuzz: 300 random messages rewritten (%d failed)",
	   fails);
	ok(bad == 0, "fuzz: chunking never changes the result (%d differ)",
	   bad);
}

/* One throughput figure: both passes over b as ct / cte. */
static void bench_one(const char *what, const char *ct, const char *cte,
                      const struct buf *b)
{
	struct res r;
	double t0 = now(), t1;

	run_ex(ct, cte, NULL, 0, b->p, b->n, FEED_64K, 1, 0, &r);
	t1 = now();
	printf("# bench: %s: %.0f MB/s\n", what,
	       (double)b->n / 1e6 / (t1 - t0));
	buf_free(&r.out);
}

static void bench(void)
{
	struct buf b = { 0 };

	for (int i = 0; b.n < 50 * 1024 * 1024; i++)
		buf_str(&b, i % 3 ? "The quick brown fox jumps over the lazy "
		                    "dog, again and again and again.\r\n"
		                  : "Gr\xc3\xbc\xc3\x9f"
		                    "e und so weiter, "
		                    "gr\xc3\xb6\xc3\x9f"
		                    "er als gedacht.\r\n");
	bench_one("8bit text -> QP, both passes", "text/plain", "8bit", &b);
	bench_one("same, 7bit declared (QP)", "text/plain", NULL, &b);
	for (size_t i = 0; i < b.n; i++)
		if (b.p[i] >= 0x80)
			b.p[i] = 'x';
	bench_one("clean 7bit passthrough", "text/plain", NULL, &b);
	bench_one("binary -> base64", "application/octet-stream", "binary", &b);
	buf_free(&b);
}

int main(void)
{
	test_chunking();
	test_big_headers();
	test_huge_line();
	test_limits();
	test_identity();
	test_identity_feeds();
	test_errors();
	test_twice();
	test_b64write();
	test_fuzz();
	final_checks(30);
	if (getenv("MIME_BENCH"))
		bench();
	return tap_done();
}
