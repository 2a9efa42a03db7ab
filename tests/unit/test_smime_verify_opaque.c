/*
 * Unit tests: lib/smime_verify_opaque.c -- opaque signed-data verified in
 * bounded memory: DER and streamed BER, altered content, content handed
 * out, hostile lengths and nesting, cuts, and a 24 MB message with the
 * peak memory measured.  The test PKI is smime_verify_fixture.h's.
 */
#include <sys/resource.h>

#include "smime_verify_fixture.h"

static void test_opaque(void)
{
	struct smime_verdict v;
	size_t len;
	unsigned char *der = osign("cms", "good", "-nodetach", &len), *p;
	char *got;

	vopq(der, len, &v, &got);
	ok(is(&v, SMIME_PASS, "signature verified"),
	   "opaque signed-data: pass");
	ok(v.opaque, "... marked opaque");
	is_str(got, content, "... its content is handed out");
	smime_verdict_clear(&v);
	free(got);
	p = memmem(der, len, "ditandatangani", 14);
	ok(p != NULL, "content found inside the DER");
	if (p)
		p[0] = 'D';
	vopq(der, len, &v, &got);
	ok(is(&v, SMIME_FAIL, "body altered after signing"),
	   "opaque, content altered: fail");
	ok(strstr(got, "Ditandatangani") != NULL,
	   "... the (altered) content is still handed out");
	smime_verdict_clear(&v);
	free(got);
	free(der);

	der = osign("cms", "good", "-nodetach -stream", &len);
	vopq(der, len, &v, &got);
	ok(is(&v, SMIME_PASS, "verified"), "opaque, streamed BER: pass");
	is_str(got, content, "... content out");
	smime_verdict_clear(&v);
	free(got);
	free(der);

	der = osign("cms", "good", "", &len);
	vopq(der, len, &v, &got);
	ok(is(&v, SMIME_PERMERROR, "without content"),
	   "a detached signature given as opaque: permerror");
	smime_verdict_clear(&v);
	free(got);
	free(der);
	vopq((const unsigned char *)"", 0, &v, &got);
	ok(is(&v, SMIME_PERMERROR, "empty"), "empty opaque: permerror");
	smime_verdict_clear(&v);
	free(got);
	vopq((const unsigned char *)"MIAGCSqGSIb3DQEHAqCAMIACAQEx", 28, &v,
	     &got);
	ok(is(&v, SMIME_PERMERROR, "does not parse"),
	   "base64 text instead of DER: permerror");
	smime_verdict_clear(&v);
	free(got);
}

/* A 24 MB opaque signed-data (streamed BER and DER) read from a file and
 * written to a file: the verifier's peak memory stays far below it. */
static void test_opaque_big(void)
{
	const char *forms[] = { "-stream", "" };
	struct rusage ru;
	long before;

	getrusage(RUSAGE_SELF, &ru);
	before = ru.ru_maxrss;
	fixture_sh("yes 'Lampiran laporan tahunan, halaman berikutnya.' | "
	           "head -c 24000000 >'%s'",
	           fixture_path("big"));
	for (int i = 0; i < 2; i++) {
		struct smime_verdict v;
		char out[512];
		BIO *in, *o;
		FILE *f;
		long long got = -1;
		snprintf(out, sizeof(out), "%s", fixture_path("big.out"));
		fixture_sh("openssl cms -sign -binary -nodetach %s -in '%s' "
		           "-signer '%s' -inkey '%s' -outform DER -out '%s'",
		           forms[i], fixture_path("big"),
		           fixture_path("good.crt"), fixture_path("good.key"),
		           fixture_path("big.der"));
		in = BIO_new_file(fixture_path("big.der"), "rb");
		o = BIO_new_file(out, "wb");
		smime_verify_opaque(&opts, in, o, &v);
		BIO_free(in);
		BIO_free(o);
		if ((f = fopen(out, "rb")) != NULL &&
		    fseek(f, 0, SEEK_END) == 0)
			got = ftell(f);
		if (f)
			fclose(f);
		ok(is(&v, SMIME_PASS, "verified") && got == 24000000,
		   "24 MB opaque signed-data%s: pass, %lld bytes out",
		   i ? " (DER)" : " (BER)", got);
		smime_verdict_clear(&v);
	}
	getrusage(RUSAGE_SELF, &ru);
	ok(ru.ru_maxrss - before < 8 * 1024,
	   "peak memory grew by %ld KiB, not by the content's size",
	   ru.ru_maxrss - before);
}

/* Hostile BER around the content: absurd lengths, deep nesting, cuts. */
static void test_opaque_hostile(void)
{
	static const unsigned char ect[] = { 0x06, 0x09, 0x2a, 0x86, 0x48,
		                             0x86, 0xf7, 0x0d, 0x01, 0x07,
		                             0x01, 0xa0, 0x80 };
	struct smime_verdict v;
	size_t len, pre;
	unsigned char *der = osign("cms", "good", "-nodetach -stream", &len);
	unsigned char *at = der ? memmem(der, len, ect, sizeof(ect)) : NULL;
	unsigned char *bad = malloc(len + 4096);
	char *got;

	ok(at != NULL, "streamed opaque: eContent found");
	if (at == NULL || bad == NULL) {
		free(der);
		free(bad);
		return;
	}
	pre = (size_t)(at - der) + sizeof(ect);
	memcpy(bad, der, pre);
	memcpy(bad + pre,
	       "\x04\x84\x7f\xff\xff\xff"
	       "abc",
	       9);
	vopq(bad, pre + 9, &v, &got);
	ok(is(&v, SMIME_PERMERROR, "does not parse"),
	   "an OCTET STRING of 2 GB in a small message: permerror");
	smime_verdict_clear(&v);
	free(got);
	memcpy(bad + pre, "\x04\x85\x01\x00\x00\x00\x00", 7);
	vopq(bad, pre + 7, &v, &got);
	ok(is(&v, SMIME_PERMERROR, "does not parse"),
	   "a 5-octet length: permerror");
	smime_verdict_clear(&v);
	free(got);
	for (int i = 0; i < 1000; i++)
		memcpy(bad + pre + 2 * (size_t)i, "\x24\x80", 2);
	memcpy(bad + pre + 2000,
	       "\x04\x01"
	       "A",
	       3);
	memset(bad + pre + 2003, 0, 2000);
	vopq(bad, pre + 4003, &v, &got);
	ok(is(&v, SMIME_PERMERROR, "does not parse"),
	   "constructed OCTET STRINGs nested 1000 deep: permerror");
	smime_verdict_clear(&v);
	free(got);
	/* DER signed-data that ends after its content: no signer infos */
	static const unsigned char nosi[] =
	        "\x30\x3d\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02\xa0"
	        "\x30\x30\x2e\x02\x01\x01\x31\x0f\x30\x0d\x06\x09\x60\x86"
	        "\x48\x01\x65\x03\x04\x02\x01\x05\x00\x30\x18\x06\x09\x2a"
	        "\x86\x48\x86\xf7\x0d\x01\x07\x01\xa0\x0b\x04\x09Isi surat";
	vopq(nosi, sizeof(nosi) - 1, &v, &got);
	ok(is(&v, SMIME_PERMERROR, "does not parse") &&
	           strcmp(got, "Isi surat") == 0,
	   "signed-data without signer infos: permerror (content was out)");
	smime_verdict_clear(&v);
	free(got);
	for (size_t cut = pre - 20; cut < len; cut += (len - pre) / 7 + 1) {
		vopq(der, cut, &v, &got);
		if (v.result != SMIME_PERMERROR)
			break;
		smime_verdict_clear(&v);
		free(got);
		got = NULL;
	}
	ok(v.result == SMIME_NONE && got == NULL,
	   "cut anywhere after the content type: permerror each time");
	smime_verdict_clear(&v);
	free(got);
	free(bad);
	free(der);
}

int main(void)
{
	setup();
	test_opaque();
	test_opaque_hostile();
	test_opaque_big();
	teardown();
	return fixture_end(tap_done());
}
