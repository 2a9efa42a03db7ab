/* Unit tests for lib/mime_*.c, encodings and structure: Content-Type/CTE
 * parsing, the two-pass 7-bit rewriter (QP, base64, re-wrapping, nested
 * multiparts, message/rfc822, broken structure, epilogues, charset labels,
 * top-level headers).  Streaming, limits and the API contracts are in
 * test_mime_stream.c, nested header blocks in test_mime_nested.c. */
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

	/* no boundary parameter: Sendmail's walk assumes "---" and rewrites
	 * it after signing, so the rewrite fails with the reason */
	runs("multipart/mixed", NULL,
	     "Gr\xc3\xbc\xc3\x9f"
	     "e\n--x\nfoo\n",
	     &r);
	ok(r.rc != 0 && strstr(r.err, "multipart without a boundary") &&
	           strstr(r.err, "Sendmail"),
	   "broken: no boundary -> refused, the reason names Sendmail's walk");
	buf_free(&r.out);
	/* ... but a CTE Sendmail does not walk keeps it one opaque leaf */
	runs("multipart/mixed", "quoted-printable",
	     "Gr\xc3\xbc\xc3\x9f"
	     "e\n--x\nfoo\n",
	     &r);
	ok(r.rc == 0 && clean7(r.out.p, r.out.n, 76) &&
	           qp_body_is(&r.out,
	                      "Gr\xc3\xbc\xc3\x9f"
	                      "e\r\n--x\r\nfoo\r\n",
	                      19),
	   "broken: no boundary, CTE quoted-printable -> opaque, decodes back");
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
	ok(part_text_is(&r.out, "X-Part: a", "--bb", NULL) && r.needs == 1 &&
	           !strcmp(body_of(&r.out),
	                   "--b\r\nX-Part: a\r\n\r\n--bb\r\n--b--"),
	   "broken: padded delimiters recognized and written without the "
	   "padding (as Sendmail's MIME walk writes them), --bb is content");
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
	test_epilogue();
	test_charset();
	test_headers();
	test_rewrap_edge();
	final_checks(5);
	return tap_done();
}
