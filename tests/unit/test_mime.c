/* Unit tests for lib/mime_*.c: Content-Type/CTE parsing, the two-pass 7-bit
 * rewriter (QP, base64, re-wrapping, nested multiparts, message/rfc822,
 * broken structure, limits), chunking invariance and output chunk sizes.
 * MIME_BENCH=1 also prints throughput figures. */
#include "mime_fixture.h"

static void test_ct(void)
{
	struct mime_ct ct;
	char longv[400], want[300];

	mime_ct_parse(NULL, &ct);
	ok(!strcmp(ct.type, "text") && !strcmp(ct.subtype, "plain") &&
	           !strcmp(ct.charset, "us-ascii"),
	   "ct: NULL is text/plain; charset=us-ascii");
	mime_ct_parse("Text/PLAIN", &ct);
	ok(!strcmp(ct.type, "text") && !strcmp(ct.subtype, "plain") &&
	           ct.charset[0] == '\0' && ct.boundary[0] == '\0',
	   "ct: type lower-cased, absent params empty");
	mime_ct_parse("Multipart/Mixed; BOUNDARY=\"abc def\"", &ct);
	ok(!strcmp(ct.subtype, "mixed") && !strcmp(ct.boundary, "abc def"),
	   "ct: quoted boundary, case-insensitive name");
	mime_ct_parse("multipart/mixed; boundary=----=_Part_1_2.3", &ct);
	is_str(ct.boundary, "----=_Part_1_2.3", "ct: unquoted boundary with =");
	mime_ct_parse("text/plain (a comment; x=y) ; charset = \"utf-8\" (c)",
	              &ct);
	is_str(ct.charset, "utf-8", "ct: comments and spaces around =");
	mime_ct_parse("application/pkcs7-mime; smime-type=enveloped-data; "
	              "name=\"sm\\\"ime.p7m\"",
	              &ct);
	ok(!strcmp(ct.smime_type, "enveloped-data") &&
	           !strcmp(ct.name, "sm\"ime.p7m"),
	   "ct: smime-type and backslash escape in quoted name");
	mime_ct_parse("multipart/signed; "
	              "protocol=\"application/pkcs7-signature\""
	              "; micalg=sha-256;\r\n\tboundary=b1",
	              &ct);
	ok(!strcmp(ct.protocol, "application/pkcs7-signature") &&
	           !strcmp(ct.boundary, "b1"),
	   "ct: protocol and folded boundary");
	mime_ct_parse("garbage", &ct);
	ok(!strcmp(ct.type, "text") && !strcmp(ct.subtype, "plain") &&
	           !strcmp(ct.charset, "us-ascii"),
	   "ct: invalid value is text/plain");
	mime_ct_parse("text/", &ct);
	is_str(ct.subtype, "plain", "ct: missing subtype is text/plain");
	mime_ct_parse("text/html; ; foo; =bar; \"x\"; charset=iso-8859-1; "
	              "charset=b",
	              &ct);
	ok(!strcmp(ct.subtype, "html") && !strcmp(ct.charset, "iso-8859-1"),
	   "ct: junk parameters skipped, first value wins");
	mime_ct_parse("text/plain; name=\"abc", &ct);
	is_str(ct.name, "abc", "ct: unterminated quote");
	mime_ct_parse("text/plain (never closed; charset=x", &ct);
	ok(!strcmp(ct.subtype, "plain") && ct.charset[0] == '\0',
	   "ct: unterminated comment");
	memset(want, 'q', 255);
	want[255] = '\0';
	snprintf(longv, sizeof(longv), "multipart/mixed; boundary=\"%s%s\"",
	         want, "qqqqqqqqqqqqqqqqqqqqqqqqqqqq");
	mime_ct_parse(longv, &ct);
	is_str(ct.boundary, want, "ct: over-long boundary kept truncated");
}

static void test_cte(void)
{
	ok(mime_cte_parse(NULL) == MIME_CTE_7BIT, "cte: NULL is 7bit");
	ok(mime_cte_parse("") == MIME_CTE_7BIT, "cte: empty is 7bit");
	ok(mime_cte_parse(" 7bit") == MIME_CTE_7BIT, "cte: 7bit");
	ok(mime_cte_parse(" 8BIT \r\n") == MIME_CTE_8BIT, "cte: 8BIT");
	ok(mime_cte_parse("Binary") == MIME_CTE_BINARY, "cte: binary");
	ok(mime_cte_parse("Quoted-Printable") == MIME_CTE_QP, "cte: qp");
	ok(mime_cte_parse("(c) base64 (comment)") == MIME_CTE_BASE64,
	   "cte: base64 with comments");
	ok(mime_cte_parse("x-uuencode") == MIME_CTE_OTHER, "cte: other");
}

static void test_passthrough(void)
{
	struct res r;
	struct mime_header h[1] = { { "Content-Type",
		                      " text/plain; charset=us-ascii" } };
	const char *body = "Hello\nWorld\r\n-- \nsig\n";

	run_ex("text/plain; charset=us-ascii", NULL, h, 1,
	       (const unsigned char *)body, strlen(body), FEED_ALL, 1, 0, &r);
	ok(r.rc == 0, "7bit: rewrite ok");
	is_str((const char *)r.out.p,
	       "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
	       "Hello\r\nWorld\r\n-- \r\nsig\r\n",
	       "7bit: passthrough with LF -> CRLF");
	ok(r.needs == 0 && r.parts == 1 && r.bytes == strlen(body),
	   "7bit: no rewrite needed, 1 part, byte count");
	buf_free(&r.out);

	body_case("text/plain", NULL, "no newline at end", "no newline at end",
	          "7bit: last line without line end stays so");
	runs("text/plain", NULL, "", &r);
	is_str((const char *)r.out.p, "Content-Type: text/plain\r\n\r\n",
	       "7bit: empty body");
	buf_free(&r.out);
}

static void test_qp(void)
{
	struct res r;
	const char *text = "Gr\xc3\xbc\xc3\x9f"
	                   "e aus K\xc3\xb6ln\n"
	                   "From here on\n"
	                   "trailing space \n"
	                   "trailing tab\t\n"
	                   "equals = sign and =41\n"
	                   ".\n"
	                   "\n"
	                   "x\n";
	runs("text/plain; charset=utf-8", "8bit", text, &r);
	ok(r.rc == 0 && r.needs == 1, "qp: 8bit text needs rewrite");
	ok(strstr((char *)r.out.p,
	          "Content-Transfer-Encoding: quoted-printable\r\n") &&
	           !strstr((char *)r.out.p, "8bit"),
	   "qp: CTE header replaced");
	ok(clean7(r.out.p, r.out.n, 76), "qp: output 7-bit, lines <= 76");
	ok(strstr((char *)r.out.p, "\r\n=46rom here on\r\n") != NULL,
	   "qp: leading From escaped");
	ok(strstr((char *)r.out.p, "trailing space=20\r\n") &&
	           strstr((char *)r.out.p, "trailing tab=09\r\n"),
	   "qp: trailing whitespace encoded");
	ok(qp_body_is(&r.out, text, strlen(text)),
	   "qp: decodes back to the CRLF text");
	buf_free(&r.out);

	/* a long 8bit line: soft breaks, never splitting =XX */
	{
		struct buf t = { 0 };
		for (int i = 0; i < 300; i++)
			buf_str(&t, i % 7 ? "ab\xc3\xa9 " : "= ");
		buf_str(&t, "\n");
		run("text/plain", "binary", t.p, t.n, &r);
		ok(clean7(r.out.p, r.out.n, 76), "qp: long 8bit line wrapped");
		ok(qp_body_is(&r.out, t.p, t.n),
		   "qp: long 8bit line decodes back");
		buf_free(&t);
		buf_free(&r.out);
	}

	/* soft break just before "--b": the continuation must not start a
	 * delimiter */
	{
		struct buf t = { 0 };
		char line[200];
		memset(line, 'x', 75);
		strcpy(line + 75, "--b--\xe9\n");
		buf_str(&t, "--b\r\nX-Part: p\r\nContent-Type: text/plain\r\n"
		            "Content-Transfer-Encoding: 8bit\r\n\r\n");
		buf_str(&t, line);
		buf_str(&t, "--b--\r\n");
		run("multipart/mixed; boundary=b", NULL, t.p, t.n, &r);
		ok(strstr((char *)r.out.p, "=\r\n=2D-b--") != NULL,
		   "qp: '-' after a soft break written =2D");
		{
			char w[200];
			size_t k = strlen(line) -
			           1; /* line end belongs to delim */
			memcpy(w, line, k);
			ok(part_is(&r.out, "X-Part: p", w, k,
			           "quoted-printable"),
			   "qp: part with forged delimiter decodes back");
		}
		buf_free(&t);
		buf_free(&r.out);
	}
}

static void test_base64(void)
{
	struct res r;
	struct buf body = { 0 }, data = { 0 };
	unsigned char c;

	for (int k = 0; k < 4; k++)
		for (int i = 0; i < 256; i++) {
			c = (unsigned char)i;
			buf_add(&data, &c, 1);
		}
	buf_str(&data, "x\ny\r\nz\r\r\n\n");
	buf_str(&body, "--=_b1\r\nX-Part: t\r\nContent-Type: text/plain\r\n\r\n"
	               "hello\r\n--=_b1\r\nX-Part: bin\r\n"
	               "Content-Type: application/octet-stream\r\n"
	               "Content-Transfer-Encoding: binary\r\n\r\n");
	buf_add(&body, data.p, data.n);
	buf_str(&body, "\r\n--=_b1--\r\n");
	run("multipart/mixed; boundary=\"=_b1\"", NULL, body.p, body.n, &r);
	ok(r.rc == 0 && r.needs == 1 && r.parts == 2,
	   "base64: binary attachment found");
	ok(clean7(r.out.p, r.out.n, 998), "base64: output 7-bit");
	ok(part_is(&r.out, "X-Part: bin", data.p, data.n, "base64"),
	   "base64: round trip of every byte value");
	ok(part_text_is(&r.out, "X-Part: t", "hello", NULL),
	   "base64: text part untouched");
	{
		struct part pt;
		find_part(&r.out, "X-Part: bin", &pt);
		ok(max_line(pt.body, pt.blen) == 76, "base64: 76-char lines");
	}
	ok(ends_with(&r.out, "\r\n--=_b1--"),
	   "base64: ends with close delimiter");
	buf_free(&r.out);

	/* top-level binary leaf: the final line end is content */
	{
		const unsigned char bin[] = "\x00\x01\xff\r\n";
		run("image/gif", "binary", bin, 5, &r);
		struct buf d = { 0 };
		const char *b = body_of(&r.out);
		b64_decode(b, strlen(b), &d);
		ok(d.n == 5 && memcmp(d.p, bin, 5) == 0 &&
		           strstr((char *)r.out.p,
		                  "Content-Transfer-Encoding: base64\r\n"),
		   "base64: top-level binary keeps its last line end");
		buf_free(&d);
		buf_free(&r.out);
	}
	buf_free(&body);
	buf_free(&data);
}

static void test_long_lines(void)
{
	struct res r;
	struct buf t = { 0 };

	for (int i = 0; i < 3000; i++)
		buf_add(&t, i % 10 == 9 ? " " : "a", 1);
	buf_str(&t, "\nshort\n");
	run("text/plain", "7bit", t.p, t.n, &r);
	ok(r.needs == 1 && strstr((char *)r.out.p, "Content-Transfer-Encoding: "
	                                           "quoted-printable"),
	   "long: 3000-char 7bit line -> QP");
	ok(clean7(r.out.p, r.out.n, 76), "long: lines <= 76");
	ok(qp_body_is(&r.out, t.p, t.n), "long: decodes back");
	buf_free(&r.out);

	/* exactly 998 is fine, 999 is not */
	buf_free(&t);
	for (int i = 0; i < 998; i++)
		buf_add(&t, "b", 1);
	buf_str(&t, "\n");
	run("text/plain", NULL, t.p, t.n, &r);
	ok(r.needs == 0, "long: a 998-octet line is left alone");
	buf_free(&r.out);
	buf_free(&t);
	for (int i = 0; i < 999; i++)
		buf_add(&t, "b", 1);
	run("text/plain", NULL, t.p, t.n, &r);
	ok(r.needs == 1, "long: a 999-octet line is re-encoded");
	buf_free(&r.out);
	buf_free(&t);
}

static const char nested_body[] =
        "preamble\r\n"
        "--outer\r\n"
        "X-Part: alt\r\n"
        "Content-Type: multipart/alternative; boundary=\"inner\"\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        "--inner\r\n"
        "X-Part: plain\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        "Gr\xc3\xbc\xc3\x9f dich\r\n"
        "--inner\r\n"
        "X-Part: html\r\n"
        "Content-Type: text/html; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        "<p>Gr\xc3\xbc\xc3\x9f dich</p>\r\n"
        "\r\n"
        "--inner--\r\n"
        "\r\n"
        "--outer\r\n"
        "X-Part: att\r\n"
        "Content-Type: application/octet-stream\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        "\x80\x81\x82 data\r\n"
        "--outer--\r\n";

static void test_nested(void)
{
	struct res r;
	struct part pt;

	runs("multipart/mixed; boundary=outer", NULL, nested_body, &r);
	ok(r.rc == 0 && r.needs == 1 && r.parts == 3, "nested: three leaves");
	ok(clean7(r.out.p, r.out.n, 998), "nested: output 7-bit");
	ok(part_text_is(&r.out, "X-Part: plain", "Gr\xc3\xbc\xc3\x9f dich",
	                "quoted-printable"),
	   "nested: text/plain in alternative -> QP");
	ok(part_text_is(&r.out, "X-Part: html",
	                "<p>Gr\xc3\xbc\xc3\x9f dich</p>\n", "quoted-printable"),
	   "nested: text/html -> QP (blank line kept)");
	ok(part_is(&r.out, "X-Part: att", "\x80\x81\x82 data", 8, "base64"),
	   "nested: 8bit octet-stream -> base64");
	ok(find_part(&r.out, "X-Part: alt", &pt) == 0 &&
	           !strcmp(pt.cte, "7bit"),
	   "nested: 8bit multipart relabelled 7bit");
	ok(strstr((char *)r.out.p, "\r\n\r\npreamble\r\n--outer\r\n") &&
	           strstr((char *)r.out.p, "\r\n--inner--\r\n\r\n--outer\r\n"),
	   "nested: preamble, delimiters and inner epilogue kept");
	ok(ends_with(&r.out, "\r\n--outer--"), "nested: ends at the close");
	buf_free(&r.out);
}

static void test_rfc822(void)
{
	struct res r;
	struct part pt;
	const char *body = "--b\r\n"
	                   "X-Part: msg\r\n"
	                   "Content-Type: message/rfc822\r\n"
	                   "Content-Transfer-Encoding: 8bit\r\n"
	                   "\r\n"
	                   "From: a@example.org\r\n"
	                   "Subject: inner\r\n"
	                   "MIME-Version: 1.0\r\n"
	                   "Content-Type: text/plain; charset=utf-8\r\n"
	                   "Content-Transfer-Encoding: 8bit\r\n"
	                   "\r\n"
	                   "\xc3\x9cn\xc3\xaf"
	                   "c\xc3\xb6"
	                   "d\xc3\xa9 body\r\n"
	                   "--b--\r\n";

	runs("multipart/mixed; boundary=b", NULL, body, &r);
	ok(r.rc == 0 && clean7(r.out.p, r.out.n, 998), "rfc822: output 7-bit");
	ok(find_part(&r.out, "X-Part: msg", &pt) == 0 &&
	           !strcmp(pt.cte, "7bit"),
	   "rfc822: message/rfc822 CTE 8bit -> 7bit");
	ok(part_text_is(&r.out, "Subject: inner",
	                "\xc3\x9cn\xc3\xaf"
	                "c\xc3\xb6"
	                "d\xc3\xa9 body",
	                "quoted-printable"),
	   "rfc822: inner 8bit body -> QP");
	ok(strstr((char *)r.out.p, "From: a@example.org\r\n") != NULL,
	   "rfc822: inner headers kept");
	buf_free(&r.out);

	/* top level message/rfc822 */
	runs("message/rfc822", NULL,
	     "Subject: x\nContent-Type: text/plain\n\nb\xe9t\n", &r);
	ok(r.rc == 0 && clean7(r.out.p, r.out.n, 998) &&
	           part_text_is(&r.out, "Subject: x", "b\xe9t\n",
	                        "quoted-printable"),
	   "rfc822: top-level message/rfc822 entered");
	buf_free(&r.out);

	/* multipart/digest: parts default to message/rfc822 */
	runs("multipart/digest; boundary=d", NULL,
	     "--d\r\n\r\nSubject: dd\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
	     "\xe9t\xe9\r\n--d--\r\n",
	     &r);
	ok(part_text_is(&r.out, "Subject: dd", "\xe9t\xe9", "quoted-printable"),
	   "rfc822: digest part is a message");
	buf_free(&r.out);
}

static void test_broken(void)
{
	struct res r;
	struct mime_header h[1] = { { "Content-Type",
		                      "multipart/mixed; boundary=b" } };
	const char *b1 = "--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n";

	runs("multipart/mixed; boundary=b", NULL, b1, &r);
	is_str((char *)r.out.p,
	       "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
	       "--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b--",
	       "broken: missing close delimiter written");
	ok(r.needs == 1, "broken: missing close counts as a rewrite");
	buf_free(&r.out);

	body_case("multipart/mixed; boundary=b", NULL,
	          "--b\r\nContent-Type: text/plain\r\n",
	          "--b\r\nContent-Type: text/plain\r\n--b--",
	          "broken: end of body inside part headers");
	body_case("multipart/mixed; boundary=b", NULL,
	          "--b\r\nContent-Type: text/plain",
	          "--b\r\nContent-Type: text/plain\r\n--b--",
	          "broken: unterminated header line at end of body");

	runs("multipart/mixed; boundary=o", NULL,
	     "--o\r\nContent-Type: multipart/mixed; boundary=i\r\n\r\n"
	     "--i\r\nX-Part: in\r\n\r\ninner\r\n--o\r\nX-Part: two\r\n\r\n"
	     "two\r\n--o--\r\n",
	     &r);
	ok(strstr((char *)r.out.p, "inner\r\n--i--\r\n--o\r\n") &&
	           part_text_is(&r.out, "X-Part: in", "inner", NULL) &&
	           part_text_is(&r.out, "X-Part: two", "two", NULL),
	   "broken: outer delimiter closes the inner multipart");
	buf_free(&r.out);

	/* no boundary parameter, 8bit bytes inside */
	runs("multipart/mixed", NULL,
	     "Gr\xc3\xbc\xc3\x9f"
	     "e\n--x\nfoo\n",
	     &r);
	ok(r.rc == 0 && clean7(r.out.p, r.out.n, 76) &&
	           strstr((char *)r.out.p,
	                  "Content-Type: multipart/mixed\r\n"
	                  "Content-Transfer-Encoding: quoted-printable\r\n"),
	   "broken: no boundary -> opaque text, QP, Content-Type kept");
	ok(qp_body_is(&r.out,
	              "Gr\xc3\xbc\xc3\x9f"
	              "e\r\n--x\r\nfoo\r\n",
	              19),
	   "broken: no-boundary body decodes back");
	buf_free(&r.out);

	/* boundary never appears */
	runs("multipart/mixed; boundary=zz", "8bit", "caf\xc3\xa9\n--z\n", &r);
	ok(strstr((char *)r.out.p, "Content-Transfer-Encoding: 7bit\r\n") &&
	           clean7(r.out.p, r.out.n, 76) &&
	           ends_with(&r.out, "\r\n--zz--"),
	   "broken: boundary never seen -> preamble QP-escaped, close "
	   "delimiter written");
	buf_free(&r.out);
	runs("multipart/mixed; boundary=zz", NULL, "just text\n", &r);
	ok(r.needs == 1 && !strcmp(body_of(&r.out), "just text\r\n--zz--"),
	   "broken: clean multipart without a delimiter gets its close "
	   "delimiter (what Sendmail's MIME walk writes)");
	buf_free(&r.out);

	/* close delimiter seen as first line: zero parts, still fine */
	run_ex("multipart/mixed; boundary=b", NULL, h, 1,
	       (const unsigned char *)"--b--\r\n", 7, FEED_ALL, 1, 0, &r);
	is_str(body_of(&r.out), "--b--", "broken: only a close delimiter");
	buf_free(&r.out);

	/* boundary with transport padding and a look-alike */
	runs("multipart/mixed; boundary=b", NULL,
	     "--b \t\r\nX-Part: a\r\n\r\n--bb\r\n--b-- \r\n", &r);
	ok(part_text_is(&r.out, "X-Part: a", "--bb", NULL) &&
	           strstr((char *)r.out.p, "--b \t\r\nX-Part: a\r\n\r\n--bb\r\n"
	                                   "--b-- ") != NULL,
	   "broken: padded delimiters recognized, --bb is content");
	buf_free(&r.out);
}

static void test_nul_cr(void)
{
	struct res r;
	const unsigned char nul[] = "a\0b\nc\n";
	const unsigned char cr[] = "a\rb\r\nc\r";

	run("text/plain", NULL, nul, 6, &r);
	ok(r.needs == 1 && strstr(body_of(&r.out), "a=00b\r\n"),
	   "nul: NUL -> =00");
	ok(qp_body_is(&r.out, "a\0b\r\nc\r\n", 8), "nul: decodes back");
	buf_free(&r.out);

	run("text/plain", NULL, cr, 7, &r);
	ok(r.needs == 1 && clean7(r.out.p, r.out.n, 76) &&
	           !strcmp(body_of(&r.out), "a=0Db\r\nc=0D"),
	   "cr: bare CR -> =0D");
	buf_free(&r.out);

	run("application/pdf", NULL, cr, 7, &r);
	{
		struct buf d = { 0 };
		const char *b = body_of(&r.out);
		b64_decode(b, strlen(b), &d);
		ok(d.n == 7 && !memcmp(d.p, cr, 7),
		   "cr: bare CR in binary part -> base64 exact");
		buf_free(&d);
	}
	buf_free(&r.out);
}

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

static void test_epilogue(void)
{
	struct res r;

	runs("multipart/mixed; boundary=b", NULL,
	     "pre\r\n--b\r\n\r\nx\r\n--b--\r\n\r\n \t\r\n\r\n", &r);
	is_str(body_of(&r.out), "pre\r\n--b\r\n\r\nx\r\n--b--",
	       "epilogue: blank epilogue dropped, no CRLF after close");
	ok(r.needs == 0, "epilogue: dropping is not a re-encoding");
	buf_free(&r.out);
	body_case("multipart/mixed; boundary=b", NULL, "--b\r\n\r\nx\r\n--b--",
	          "--b\r\n\r\nx\r\n--b--", "epilogue: close without line end");
	body_case("multipart/mixed; boundary=b", NULL,
	          "--b\r\n\r\nx\r\n--b--\r\ntrailer text\r\n\r\n",
	          "--b\r\n\r\nx\r\n--b--\r\ntrailer text\r\n\r\n",
	          "epilogue: non-blank epilogue kept");
	runs("multipart/mixed; boundary=b", NULL,
	     "--b\r\n\r\nx\r\n--b--\r\ntr\xe4iler\r\n", &r);
	ok(ends_with(&r.out, "--b--\r\ntr=E4iler\r\n") && r.needs == 1,
	   "epilogue: 8bit epilogue escaped");
	buf_free(&r.out);
}

static void test_big_headers(void)
{
	struct buf b = { 0 };
	struct res r;
	char line[64];
	double t0 = now();

	buf_str(&b, "--b\r\nX-Part: big\r\n");
	for (int i = 0; i < 10000; i++) {
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

static void test_charset(void)
{
	struct res r;
	struct mime_header h[1] = { { "Content-Disposition", "inline" } };
	const char *u = "Gr\xc3\xbc\xc3\x9f"
	                "e\n";

	run_ex(NULL, NULL, h, 1, (const unsigned char *)u, strlen(u),
	       FEED_BYTES, 1, 0, &r);
	is_str((char *)r.out.p,
	       "Content-Disposition: inline\r\n"
	       "Content-Type: text/plain; charset=utf-8\r\n"
	       "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
	       "Gr=C3=BC=C3=9Fe\r\n",
	       "charset: no Content-Type + UTF-8 -> charset=utf-8");
	buf_free(&r.out);
	run_ex(NULL, NULL, NULL, 0, (const unsigned char *)"caf\xe9\n", 5,
	       FEED_ALL, 1, 0, &r);
	ok(strstr((char *)r.out.p, "Content-Type: text/plain; "
	                           "charset=unknown-8bit\r\n") != NULL,
	   "charset: invalid UTF-8 -> unknown-8bit");
	buf_free(&r.out);
	run_ex(NULL, NULL, NULL, 0, (const unsigned char *)"\xed\xa0\x80\n", 4,
	       FEED_ALL, 1, 0, &r);
	ok(strstr((char *)r.out.p, "charset=unknown-8bit") != NULL,
	   "charset: UTF-16 surrogate is not UTF-8");
	buf_free(&r.out);
	run_ex(NULL, NULL, NULL, 0, (const unsigned char *)"plain\n", 6,
	       FEED_ALL, 1, 0, &r);
	is_str((char *)r.out.p, "\r\nplain\r\n",
	       "charset: ASCII body, no headers, nothing added");
	buf_free(&r.out);
}

static void test_headers(void)
{
	struct res r;
	struct mime_header h[4] = {
		{ "Content-Type", "multipart/mixed;\n boundary=\"b\"" },
		{ "Content-Disposition", " inline" },
		{ "Content-Description", "two\r\n\tlines" },
		{ "Content-ID", "a\n\nb\nc\n" },
	};
	const char *body = "--b\r\n\r\nx\r\n--b--\r\n";

	run_ex("multipart/mixed; boundary=\"b\"", NULL, h, 4,
	       (const unsigned char *)body, strlen(body), FEED_ALL, 1, 0, &r);
	is_str((char *)r.out.p,
	       "Content-Type: multipart/mixed;\r\n boundary=\"b\"\r\n"
	       "Content-Disposition: inline\r\n"
	       "Content-Description: two\r\n\tlines\r\n"
	       "Content-ID: a\r\n b\r\n c\r\n"
	       "\r\n--b\r\n\r\nx\r\n--b--",
	       "headers: top-level folding canonicalized, never a blank line");
	buf_free(&r.out);

	{
		struct mime_header h2[3] = {
			{ "Content-Type", "text/plain" },
			{ "content-transfer-encoding", "8bit" },
			{ "Content-Transfer-Encoding", "binary" },
		};
		run_ex("text/plain", "8bit", h2, 3,
		       (const unsigned char *)"\xe9", 1, FEED_ALL, 1, 0, &r);
		is_str((char *)r.out.p,
		       "Content-Type: text/plain\r\n"
		       "Content-Transfer-Encoding: quoted-printable\r\n\r\n=E9",
		       "headers: top-level CTE replaced once");
		buf_free(&r.out);
	}
}

static void test_rewrap_edge(void)
{
	struct res r;
	/* invalid escapes, '=' + padding soft break, lower-case hex */
	const char *q = "a=ZZ b=3d c=  \r\nnext=4\r\nx\xe9y   \r\nend";
	struct buf orig = { 0 }, d = { 0 };

	runs("text/plain", "quoted-printable", q, &r);
	qp_decode(q, strlen(q), &orig);
	{
		const char *b = body_of(&r.out);
		qp_decode(b, strlen(b), &d);
	}
	ok(r.needs == 1 && clean7(r.out.p, r.out.n, 76) && d.n == orig.n &&
	           !memcmp(d.p, orig.p, d.n),
	   "rewrap: odd QP keeps its decoded bytes");
	ok(strstr((char *)r.out.p,
	          "a=3DZZ b=3d c=\r\nnext=3D4\r\nx=E9y\r\nend") != NULL,
	   "rewrap: escapes fixed, padding dropped");
	buf_free(&r.out);
	buf_free(&orig);
	buf_free(&d);

	body_case("application/zip", "base64", "QUJD\xff\r\nREVG\r\n",
	          "QUJDREVG\r\n", "rewrap: stray byte dropped");
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
	ok(r.rc == 0 && clean7(r.out.p, r.out.n, 998),
	   "limits: 100 nested multiparts, output 7-bit");
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
	test_ct();
	test_cte();
	test_passthrough();
	test_qp();
	test_base64();
	test_long_lines();
	test_nested();
	test_rfc822();
	test_broken();
	test_nul_cr();
	test_chunking();
	test_epilogue();
	test_big_headers();
	test_huge_line();
	test_charset();
	test_headers();
	test_rewrap_edge();
	test_limits();
	test_identity();
	test_identity_feeds();
	test_errors();
	test_twice();
	test_b64write();
	test_fuzz();
	ok(g_maxw <= 65536, "output: no write larger than 64 KiB (max %zu)",
	   g_maxw);
	ok(g_ident >= 30 && g_ident_bad == 0,
	   "identity copy: writes what the parser writes, in every run whose "
	   "body needed no change (%zu runs, %zu differ)",
	   g_ident, g_ident_bad);
	if (getenv("MIME_BENCH"))
		bench();
	return tap_done();
}
