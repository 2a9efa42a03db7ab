/*
 * miltc -- a small milter-protocol client (MTA side) for benchmarks and
 * tests: sends one message file N times over C concurrent connections to a
 * milter and reports messages/s and the verdicts.
 *
 *   miltc -s inet:PORT@HOST [-c CONNS] [-n MESSAGES] [-a CLIENT_IP]
 *         [-f SENDER] [-o OUTFILE] [-r RCPT] [-H NAME:TEXT]... [-B TEXT]
 *         FILE
 *
 * -R paces the run at RATE messages/s over all connections (open loop);
 * every run also prints per-message latency percentiles (from the first
 * packet of a message to the reply to its end).
 * -r sets the envelope recipient (default x@example.org; sent only when
 * the milter asks for recipients).
 * -a sets the client address of the connect step (default 127.0.0.1), -f
 * the envelope sender (default andi@banjarkota.go.id).
 * -o writes the message as the milter changed it (the last one) to OUTFILE.
 * -H and -B check every message's end-of-message replies, so that a rate
 * cannot be that of a milter doing nothing: -H NAME:TEXT wants a header
 * edit (add, insert or change) of field NAME whose value, unfolded,
 * contains TEXT (repeatable, each must match); -B TEXT wants the body
 * replaced by one that contains TEXT.  The counts are printed as
 * checked= and bad=.
 * Exit status 0 when every message got an answer and passed the checks,
 * 1 otherwise.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "slurp.h"

#define SMFI_V6         6
#define SMFIP_NOCONNECT 0x01
#define SMFIP_NOHELO    0x02
#define SMFIP_NOMAIL    0x04
#define SMFIP_NORCPT    0x08
#define SMFIP_NOBODY    0x10
#define SMFIP_NOHDRS    0x20
#define SMFIP_NOEOH     0x40
#define SMFIP_NR_HDR    0x80
#define SMFIP_NR_CONN   0x1000
#define SMFIP_NR_MAIL   0x4000
#define SMFIP_NR_RCPT   0x8000
#define SMFIP_NR_EOH    0x40000
#define SMFIP_NR_BODY   0x80000

static const char *host = "127.0.0.1";
static int port;
static const char *client_ip = "127.0.0.1";
static char *msg;
static size_t msglen;
static size_t hdr_end; /* offset of the body */
static int per_conn;
static double rate; /* -R: messages/s over all connections, 0: flat out */
static int conns_n;
static double t_start; /* monotonic start of the run */
static double *lat;    /* per-message latency (s), end of message reply */
static size_t n_lat, lat_cap;
static const char *outfile;
static const char *rcpt = "x@example.org"; /* -r: envelope recipient */
static const char *sender = "andi@banjarkota.go.id"; /* -f */
#define MAX_WANT 8
static const char *want_hdr[MAX_WANT]; /* -H NAME:TEXT */
static int n_want;
static const char *want_body; /* -B TEXT */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long n_ok, n_accept, n_tempfail, n_reject, n_other, n_fail;
static long n_checked; /* messages that passed -H and -B */

struct pkt {
	char cmd;
	unsigned char *data;
	uint32_t len;
};

/* All n octets written (out) or read, through EINTR; -1 on error or EOF. */
static int xio(int fd, void *p, size_t n, int out)
{
	char *c = p;

	while (n > 0) {
		ssize_t r = out ? write(fd, c, n) : read(fd, c, n);
		if (r <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			return -1;
		}
		c += r;
		n -= (size_t)r;
	}
	return 0;
}

static int xwrite(int fd, const void *p, size_t n)
{
	return xio(fd, (void *)p, n, 1);
}

static int xread(int fd, void *p, size_t n)
{
	return xio(fd, p, n, 0);
}

/* One packet in one write (with TCP_NODELAY set, nothing waits). */
static int send_pkt(int fd, char cmd, const void *data, size_t len)
{
	unsigned char stackbuf[4096], *b = stackbuf;
	uint32_t l = htonl((uint32_t)len + 1);
	int rc;

	if (len + 5 > sizeof(stackbuf) && (b = malloc(len + 5)) == NULL)
		return -1;
	memcpy(b, &l, 4);
	b[4] = (unsigned char)cmd;
	if (len)
		memcpy(b + 5, data, len);
	rc = xwrite(fd, b, len + 5);
	if (b != stackbuf)
		free(b);
	return rc;
}

static int recv_pkt(int fd, struct pkt *p)
{
	uint32_t l;

	if (xread(fd, &l, 4) != 0)
		return -1;
	l = ntohl(l);
	if (l == 0 || l > 1u << 26)
		return -1;
	if (xread(fd, &p->cmd, 1) != 0)
		return -1;
	p->len = l - 1;
	p->data = realloc(p->data, p->len + 1);
	if (p->len && xread(fd, p->data, p->len) != 0)
		return -1;
	p->data[p->len] = 0;
	return 0;
}

/* Wait for a one-step reply; returns the command char or 0 on error. */
static char reply(int fd, struct pkt *p)
{
	if (recv_pkt(fd, p) != 0)
		return 0;
	return p->cmd;
}

/* Send one step; wait for its reply unless the filter asked for none. */
static char step(int fd, struct pkt *p, uint32_t pflags, uint32_t nr, char cmd,
                 const void *data, size_t len)
{
	if (send_pkt(fd, cmd, data, len) != 0)
		return 0;
	if (pflags & nr)
		return 'c';
	return reply(fd, p);
}

/* Send the headers of msg, one 'L' packet each; folded lines joined. */
static int send_headers(int fd, struct pkt *p, uint32_t pflags)
{
	size_t i = 0;
	char *buf = malloc(msglen + 2);

	while (i < hdr_end) {
		size_t s = i, colon, e;
		char *q;
		if (msg[i] == '\r' || msg[i] == '\n')
			break;
		while (i < hdr_end) {
			char *nl = memchr(msg + i, '\n', hdr_end - i);
			i = nl ? (size_t)(nl - msg) + 1 : hdr_end;
			if (i >= hdr_end || (msg[i] != ' ' && msg[i] != '\t'))
				break;
		}
		e = i;
		colon = s;
		while (colon < e && msg[colon] != ':')
			colon++;
		if (colon >= e)
			continue;
		q = buf;
		memcpy(q, msg + s, colon - s);
		q += colon - s;
		*q++ = 0;
		colon++;
		while (colon < e && (msg[colon] == ' ' || msg[colon] == '\t'))
			colon++;
		while (e > colon && (msg[e - 1] == '\n' || msg[e - 1] == '\r'))
			e--;
		for (size_t k = colon; k < e; k++)
			if (msg[k] != '\r')
				*q++ = msg[k];
		*q++ = 0;
		if (!(pflags & SMFIP_NOHDRS)) {
			if (step(fd, p, pflags, SMFIP_NR_HDR, 'L', buf,
			         (size_t)(q - buf)) != 'c') {
				free(buf);
				return p->cmd ? p->cmd : -1;
			}
		}
	}
	free(buf);
	return 0;
}

static void count(char c)
{
	pthread_mutex_lock(&lock);
	switch (c) {
	case 'c':
		n_ok++;
		break;
	case 'a':
		n_accept++;
		break;
	case 't':
		n_tempfail++;
		break;
	case 'r':
		n_reject++;
		break;
	case 'y':
		n_other++;
		break;
	default:
		n_fail++;
		break;
	}
	pthread_mutex_unlock(&lock);
}

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* -R: wait until message m of connection ci is due (an open-loop pace of
 * rate messages/s over all connections). */
static void pace(int ci, int m)
{
	double due, now;

	if (rate <= 0)
		return;
	due = t_start + ((double)m * conns_n + ci) / rate;
	while ((now = mono()) < due) {
		double d = due - now;
		struct timespec ts = { (time_t)d,
			               (long)((d - (double)(time_t)d) * 1e9) };
		nanosleep(&ts, NULL);
	}
}

static void record_latency(double secs)
{
	pthread_mutex_lock(&lock);
	if (n_lat < lat_cap)
		lat[n_lat++] = secs;
	pthread_mutex_unlock(&lock);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The replies to one end of message, as far as -H and -B look at them. */
struct seen {
	unsigned hdr_ok;  /* bit i: want_hdr[i] matched */
	int body_changed; /* a replacement body arrived */
	char *body;       /* the replacement body, when -B */
	size_t len, cap;
};

/* Does value, with its folding and runs of white space taken as one
 * space, contain text? */
static int value_has(const char *value, const char *text)
{
	size_t n = strlen(value);
	char *u = malloc(n + 1), *q = u;
	int found;

	if (u == NULL)
		return 0;
	for (const char *v = value; *v; v++) {
		int ws = *v == ' ' || *v == '\t' || *v == '\r' || *v == '\n';
		if (!ws)
			*q++ = *v;
		else if (q > u && q[-1] != ' ')
			*q++ = ' ';
	}
	*q = 0;
	found = strstr(u, text) != NULL;
	free(u);
	return found;
}

/* One header edit (name, value) against every -H wanted. */
static void seen_header(struct seen *s, const char *name, const char *value)
{
	for (int i = 0; i < n_want; i++) {
		const char *colon = strchr(want_hdr[i], ':');
		size_t nl = (size_t)(colon - want_hdr[i]);
		if (strlen(name) == nl &&
		    strncasecmp(name, want_hdr[i], nl) == 0 &&
		    value_has(value, colon + 1))
			s->hdr_ok |= 1u << i;
	}
}

/* One reply packet of the end of message. */
static void seen_reply(struct seen *s, const struct pkt *p)
{
	if (p->cmd == 'b') {
		s->body_changed = 1;
		if (want_body && s->len + p->len + 1 > s->cap) {
			size_t cap = (s->len + p->len + 1) * 2;
			char *b = realloc(s->body, cap);
			if (b == NULL)
				return;
			s->body = b;
			s->cap = cap;
		}
		if (want_body) {
			memcpy(s->body + s->len, p->data, p->len);
			s->len += p->len;
			s->body[s->len] = 0;
		}
	} else if (p->cmd == 'h' || p->cmd == 'i' || p->cmd == 'm') {
		/* h: name value; i and m: a 4-octet index first */
		size_t skip = p->cmd == 'h' ? 0 : 4;
		const char *name, *value;
		if (p->len < skip + 2)
			return;
		name = (const char *)p->data + skip;
		value = name + strlen(name) + 1;
		if (value < (const char *)p->data + p->len)
			seen_header(s, name, value);
	}
}

/* Count the message as checked when it passed (whatever did not pass, or
 * never reached its end, is bad: counted at the end of the run), and make
 * s ready for the next one. */
static void seen_done(struct seen *s, char verdict)
{
	int ok = s->hdr_ok == (1u << n_want) - 1u &&
	         (!want_body ||
	          (s->body_changed && s->body &&
	           memmem(s->body, s->len, want_body, strlen(want_body))));

	if ((n_want || want_body) && ok && verdict == 'c') {
		pthread_mutex_lock(&lock);
		n_checked++;
		pthread_mutex_unlock(&lock);
	}
	s->hdr_ok = 0;
	s->body_changed = 0;
	s->len = 0;
}

static int one_connection(int ci)
{
	struct sockaddr_in sa;
	struct pkt p = { 0, NULL, 0 };
	struct seen seen = { 0, 0, NULL, 0, 0 };
	char mail[330];
	int maillen = snprintf(mail, sizeof(mail), "<%s>", sender) + 1;
	unsigned char neg[12];
	uint32_t v, pflags;
	char conn[256];
	size_t cl;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	FILE *out = NULL;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, host, &sa.sin_addr);
	if (fd >= 0) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		perror("miltc: connect");
		return -1;
	}
	v = htonl(SMFI_V6);
	memcpy(neg, &v, 4);
	v = htonl(0x1ff);
	memcpy(neg + 4, &v, 4);
	v = htonl(0x1fffff & ~0x100000u);
	memcpy(neg + 8, &v, 4);
	if (send_pkt(fd, 'O', neg, 12) != 0 || reply(fd, &p) != 'O' ||
	    p.len < 12)
		goto fail;
	memcpy(&v, p.data + 8, 4);
	pflags = ntohl(v);
	/* connect: host\0 family port addr\0 */
	cl = (size_t)snprintf(conn, sizeof(conn), "client.example") + 1;
	conn[cl++] = '4';
	conn[cl++] = 0;
	conn[cl++] = 25;
	cl += (size_t)snprintf(conn + cl, sizeof(conn) - cl, "%s", client_ip) +
	      1;
	if (!(pflags & SMFIP_NOCONNECT)) {
		send_pkt(fd, 'D', "Cj\0mail.banjarkota.go.id", 25);
		if (step(fd, &p, pflags, SMFIP_NR_CONN, 'C', conn, cl) != 'c')
			goto fail;
	}
	for (int m = 0; m < per_conn; m++) {
		char r = 0;
		char qid[32];
		int qlen =
		        snprintf(qid, sizeof(qid), "Mi%c%08X", 0, rand()) + 1;
		double began;
		pace(ci, m);
		began = mono();
		send_pkt(fd, 'D', qid, (size_t)qlen);
		if (!(pflags & SMFIP_NOMAIL)) {
			if ((r = step(fd, &p, pflags, SMFIP_NR_MAIL, 'M', mail,
			              (size_t)maillen)) != 'c') {
				count(r);
				continue;
			}
		}
		if (!(pflags & SMFIP_NORCPT)) {
			char rarg[330];
			int rlen =
			        snprintf(rarg, sizeof(rarg), "<%s>", rcpt) + 1;
			if ((r = step(fd, &p, pflags, SMFIP_NR_RCPT, 'R', rarg,
			              (size_t)rlen)) != 'c') {
				count(r);
				continue;
			}
		}
		r = (char)send_headers(fd, &p, pflags);
		if (r != 0) {
			count(r);
			continue;
		}
		if (!(pflags & SMFIP_NOEOH)) {
			if ((r = step(fd, &p, pflags, SMFIP_NR_EOH, 'N', NULL,
			              0)) != 'c') {
				count(r);
				continue;
			}
		}
		for (size_t off = hdr_end;
		     !(pflags & SMFIP_NOBODY) && off < msglen;) {
			size_t n = msglen - off > 65535 ? 65535 : msglen - off;
			if ((r = step(fd, &p, pflags, SMFIP_NR_BODY, 'B',
			              msg + off, n)) != 'c')
				break;
			off += n;
		}
		if (send_pkt(fd, 'E', NULL, 0) != 0)
			goto fail;
		if (outfile && m == per_conn - 1) {
			pthread_mutex_lock(&lock);
			out = fopen(outfile, "wb");
		}
		for (;;) {
			if (recv_pkt(fd, &p) != 0)
				goto fail;
			seen_reply(&seen, &p);
			if (p.cmd == 'b' && out)
				fwrite(p.data, 1, p.len, out);
			else if ((p.cmd == 'h' || p.cmd == 'm') && out) {
				const char *name = (const char *)p.data +
				                   (p.cmd == 'm' ? 4 : 0);
				const char *val = name + strlen(name) + 1;
				fprintf(out, "%s %s: %s\n",
				        p.cmd == 'h' ? "#ADD" : "#CHG", name,
				        val);
			}
			if (strchr("bhmi+-2spq", p.cmd) == NULL)
				break;
		}
		if (out) {
			fclose(out);
			out = NULL;
			pthread_mutex_unlock(&lock);
		}
		record_latency(mono() - began);
		seen_done(&seen, p.cmd);
		count(p.cmd);
	}
	send_pkt(fd, 'Q', NULL, 0);
	close(fd);
	free(p.data);
	free(seen.body);
	return 0;
fail:
	if (out) {
		fclose(out);
		pthread_mutex_unlock(&lock);
	}
	count(0);
	close(fd);
	free(p.data);
	free(seen.body);
	return -1;
}

static void *worker(void *arg)
{
	one_connection((int)(long)arg);
	return NULL;
}

int main(int argc, char **argv)
{
	int conns = 1, total = 1, opt;
	const char *sock = NULL;
	struct timeval t0, t1;
	pthread_t *tids;
	double secs;
	long n_bad = 0; /* messages that did not pass -H and -B */
	char *b;

	while ((opt = getopt(argc, argv, "s:c:n:a:f:o:r:R:H:B:")) != -1) {
		switch (opt) {
		case 's':
			sock = optarg;
			break;
		case 'c':
			conns = atoi(optarg);
			break;
		case 'n':
			total = atoi(optarg);
			break;
		case 'a':
			client_ip = optarg;
			break;
		case 'o':
			outfile = optarg;
			break;
		case 'r':
			rcpt = optarg;
			break;
		case 'R':
			rate = atof(optarg);
			break;
		case 'f':
			sender = optarg;
			break;
		case 'H':
			if (n_want == MAX_WANT || !strchr(optarg, ':')) {
				fprintf(stderr,
				        "miltc: -H NAME:TEXT, at most "
				        "%d\n",
				        MAX_WANT);
				return 2;
			}
			want_hdr[n_want++] = optarg;
			break;
		case 'B':
			want_body = optarg;
			break;
		default:
			return 2;
		}
	}
	if (!sock || optind + 1 != argc ||
	    sscanf(sock, "inet:%d@", &port) != 1 || conns < 1 ||
	    total < conns) {
		fprintf(stderr, "usage: miltc -s inet:PORT@HOST [-c N] [-n N] "
		                "[-a IP] [-f SENDER] [-o OUT] [-r RCPT] "
		                "[-R RATE] [-H NAME:TEXT]... [-B TEXT] FILE\n");
		return 2;
	}
	if (strchr(sock, '@'))
		host = strchr(sock, '@') + 1;
	msg = bench_slurp(argv[optind], &msglen);
	if (msg == NULL)
		return 2;
	b = strstr(msg, "\r\n\r\n");
	hdr_end = b ? (size_t)(b - msg) + 4 : msglen;
	if (!b && (b = strstr(msg, "\n\n")))
		hdr_end = (size_t)(b - msg) + 2;
	per_conn = total / conns;
	conns_n = conns;
	lat_cap = (size_t)per_conn * (size_t)conns;
	lat = calloc(lat_cap + 1, sizeof(*lat));
	tids = calloc((size_t)conns, sizeof(*tids));
	gettimeofday(&t0, NULL);
	t_start = mono();
	for (int i = 0; i < conns; i++)
		pthread_create(&tids[i], NULL, worker, (void *)(long)i);
	for (int i = 0; i < conns; i++)
		pthread_join(tids[i], NULL);
	gettimeofday(&t1, NULL);
	if (n_want || want_body)
		n_bad = (long)per_conn * conns - n_checked;
	secs = (double)(t1.tv_sec - t0.tv_sec) +
	       (t1.tv_usec - t0.tv_usec) / 1e6;
	printf("messages=%d seconds=%.3f rate=%.1f continue=%ld accept=%ld "
	       "tempfail=%ld reject=%ld other=%ld failed=%ld checked=%ld "
	       "bad=%ld\n",
	       per_conn * conns, secs, per_conn * conns / secs, n_ok, n_accept,
	       n_tempfail, n_reject, n_other, n_fail, n_checked, n_bad);
	if (n_lat > 0) {
		qsort(lat, n_lat, sizeof(*lat), cmp_double);
		printf("latency_ms p50=%.2f p90=%.2f p99=%.2f max=%.2f\n",
		       lat[n_lat / 2] * 1e3, lat[n_lat * 9 / 10] * 1e3,
		       lat[n_lat * 99 / 100] * 1e3, lat[n_lat - 1] * 1e3);
	}
	free(lat);
	free(tids);
	free(msg);
	return n_fail || n_bad ? 1 : 0;
}
