/*
 * json -- the --json output of smimectl's list, show-like and check
 * commands: strings, and the rows of an array of objects.
 */
#include <stdio.h>
#include <time.h>

#include "util.h"
#include "smimectl.h"

void json_str(const char *s)
{
	if (s == NULL) {
		printf("null");
		return;
	}
	putchar('"');
	for (; s && *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

void json_row_begin(int n, long long id, const char *name, const char *value)
{
	printf("%s\n  {\"id\": %lld, \"%s\": ", n ? "," : "", id, name);
	json_str(value);
}

/* The n members kv, each as `, "name": value`. */
static void json_fields(const struct json_kv *kv, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		printf(", \"%s\": ", kv[i].name);
		json_str(kv[i].value);
	}
}

void json_row_end(const struct json_kv *kv, size_t n)
{
	json_fields(kv, n);
	putchar('}');
}

void json_cert_fields(const char *serial, const char *fingerprint,
                      const char *subject, const char *issuer,
                      time_t not_before, time_t not_after)
{
	char nb[40], na[40];
	const struct json_kv kv[] = {
		{ "serial", serial },   { "fingerprint", fingerprint },
		{ "subject", subject }, { "issuer", issuer },
		{ "not_before", nb },   { "not_after", na },
	};

	time_fmt(not_before, nb, sizeof(nb));
	time_fmt(not_after, na, sizeof(na));
	json_fields(kv, sizeof(kv) / sizeof(kv[0]));
}
