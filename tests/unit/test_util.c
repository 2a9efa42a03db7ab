/* Unit tests: address parsing (lib/util.c) -- the From address that picks
 * the signer, and the To/Cc/Bcc lists that give -t its recipients. */
#include <stdio.h>
#include <string.h>

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
	return tap_done();
}
