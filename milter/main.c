/*
 * smime-milter -- S/MIME signing milter: argv, the configuration check
 * (-n), daemon start-up, privilege drop, the socket, smfi_main and a prompt
 * stop.  The offline mode (-t) is offline.c, the reload reload.c, the
 * callbacks callbacks.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sysexits.h>
#include <getopt.h>
#include <unistd.h>

#include "audit.h"
#include "config.h"
#include "listen.h"
#include "log.h"
#include "milter.h"
#include "offline.h"
#include "ocsp_cache.h"
#include "p11.h"
#include "reload.h"
#include "snapshot.h"

static const char *conf_path = CONFIG_DEFAULT_PATH;

static void audit_report(int is_error, const char *text)
{
	mlog(is_error ? LOG_ERR : LOG_NOTICE, "%s", text);
}

/* OCSP news (lib/ocsp_cache.c): a responder failing, answering again. */
static void ocsp_report(int is_error, const char *text)
{
	mlog(is_error ? LOG_WARNING : LOG_INFO, "%s", text);
}

static void usage(void)
{
	fprintf(stderr,
	        "usage: smime-milter [-c FILE] [-f]\n"
	        "       smime-milter [-c FILE] -n\n"
	        "       smime-milter [-c FILE] -t FILE [--inbound] [-s ADDR] "
	        "[-r ADDR]...\n"
	        "       smime-milter -V\n"
	        "  -c FILE  configuration file (default %s)\n"
	        "  -f       stay in the foreground, log to stderr too\n"
	        "  -n       check configuration, database and keys, then exit\n"
	        "  -t FILE  sign one message file offline, result on stdout\n"
	        "  --inbound  with -t: the message comes from outside "
	        "(decrypt,\n"
	        "           verify and stamp it, as inbound mail is)\n"
	        "  -s ADDR  envelope sender for -t\n"
	        "  -r ADDR  envelope recipient for -t (repeatable; default: "
	        "the\n"
	        "           To, Cc and Bcc addresses of the message)\n"
	        "  -V       print the version\n",
	        CONFIG_DEFAULT_PATH);
	exit(EX_USAGE);
}

/* ---- -n: check everything ------------------------------------------ */

/* Each line of text as "FILE: mailbox LINE" on standard error. */
static void print_mailbox_lines(const char *text)
{
	const char *p = text;

	while (*p) {
		const char *nl = strchr(p, '\n');
		fprintf(stderr, "%s: mailbox %.*s\n", conf_path,
		        nl ? (int)(nl - p) : (int)strlen(p), p);
		p = nl ? nl + 1 : p + strlen(p);
	}
}

static int check_config(void)
{
	struct snapshot *s;
	struct config *cfg;
	char err[8192], warn[8192];

	if (config_load(conf_path, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return EX_CONFIG;
	}
	config_free(cfg);
	if (snapshot_build(conf_path, 0, &s, err, sizeof(err), warn,
	                   sizeof(warn)) != 0) {
		fprintf(stderr, "%s\n", err);
		return strstr(err, "database") ? EX_NOINPUT : EX_CONFIG;
	}
	if (warn[0]) {
		print_mailbox_lines(warn);
		snapshot_unref(s);
		return EX_DATAERR;
	}
	if (s->cfg->inbound_decrypt) {
		/* a key that only decrypts never fails the check: said, not
		 * counted against it */
		char report[8192];
		if (snapshot_decrypt_report(s, report, sizeof(report)) > 0)
			print_mailbox_lines(report);
	}
	printf("%s: OK: %zu mailbox%s, %zu can sign", conf_path, s->nentries,
	       s->nentries == 1 ? "" : "es", s->nusable);
	if (s->cfg->nencrypt > 0 || s->cfg->harvest)
		printf(", %zu recipient certificate%s", s->nrcpts,
		       s->nrcpts == 1 ? "" : "s");
	printf("\n");
	snapshot_unref(s);
	return EX_OK;
}

/* ---- -t: offline signing through the same callbacks ------------------ */

/* Envelope recipients given with -r. */
static char **opt_rcpts;
static size_t nopt_rcpts;

static void opt_rcpt_add(const char *addr)
{
	char **nv = realloc(opt_rcpts, (nopt_rcpts + 1) * sizeof(*nv));

	if (nv == NULL || (nv[nopt_rcpts] = strdup(addr)) == NULL) {
		fprintf(stderr, "out of memory\n");
		exit(EX_OSERR);
	}
	opt_rcpts = nv;
	nopt_rcpts++;
}

static int run_offline(const char *path, const char *sender, int inbound)
{
	struct snapshot *s;
	char err[8192], warn[8192];
	int rc;

	if (snapshot_build(conf_path, 0, &s, err, sizeof(err), warn,
	                   sizeof(warn)) != 0) {
		fprintf(stderr, "%s\n", err);
		return EX_CONFIG;
	}
	if (warn[0])
		mlog_lines(LOG_WARNING, "mailbox ", warn);
	milter_set_snapshot(s);
	rc = offline_sign(&milter_desc, path, sender, opt_rcpts, nopt_rcpts,
	                  inbound);
	milter_set_snapshot(NULL);
	return rc;
}

/* ---- the daemon ------------------------------------------------------ */

/*
 * libmilter keeps its listening socket to itself.  Find it: the stop pokes
 * it (see stop_listener), and a TCP one gets TCP_NODELAY, which accepted
 * connections inherit: at end of message the filter writes several small
 * replies in a row (body, header edits, continue), and with Nagle's
 * algorithm each one after the first waits for the MTA's delayed ACK, some
 * 40 ms per message.
 */
static int listen_fd = -1;

static void listener_find(void)
{
	for (int fd = 3; fd < 256; fd++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int listening = 0, one = 1;
		socklen_t ol = sizeof(listening);
		if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0 ||
		    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening,
		               &ol) != 0 ||
		    !listening)
			continue;
		listen_fd = fd;
		if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
			           sizeof(one));
		return;
	}
}

static int drop_privileges(const char *user)
{
	struct passwd *pw;

	if (user == NULL || geteuid() != 0)
		return 0;
	pw = getpwnam(user);
	if (pw == NULL) {
		mlog(LOG_ERR, "user %s: no such user", user);
		return -1;
	}
	if (pw->pw_uid == 0)
		return 0;
	if (initgroups(pw->pw_name, pw->pw_gid) != 0 ||
	    setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
		mlog(LOG_ERR, "cannot become %s: %s", user, strerror(errno));
		return -1;
	}
	if (setuid(0) == 0) {
		mlog(LOG_ERR, "privileges were not dropped");
		return -1;
	}
	/* setuid resets dumpable; keep secrets out of core files */
	prctl(PR_SET_DUMPABLE, 0);
	return 0;
}

/* A unix socket gets socket_mode (default 0660) and socket_group, so the
 * MTA's group can connect and nobody else can. */
static int socket_permissions(const struct config *cfg)
{
	const char *sock = cfg->socket, *path;
	mode_t mode = (mode_t)strtol(cfg->socket_mode, NULL, 8);
	gid_t gid = (gid_t)-1;
	uid_t uid = (uid_t)-1;

	if (strncmp(sock, "unix:", 5) != 0 && strncmp(sock, "local:", 6) != 0)
		return 0;
	path = strchr(sock, ':') + 1;
	if (cfg->socket_group) {
		struct group *gr = getgrnam(cfg->socket_group);
		if (gr == NULL) {
			mlog(LOG_ERR, "%s: socket_group %s: no such group",
			     cfg->path, cfg->socket_group);
			return -1;
		}
		gid = gr->gr_gid;
	}
	if (cfg->user && geteuid() == 0) {
		struct passwd *pw = getpwnam(cfg->user);
		if (pw)
			uid = pw->pw_uid; /* so it can remove it at exit */
	}
	if ((uid != (uid_t)-1 || gid != (gid_t)-1) &&
	    chown(path, uid, gid) != 0) {
		mlog(LOG_ERR, "socket %s: chown: %s", path, strerror(errno));
		return -1;
	}
	if (chmod(path, mode) != 0) {
		mlog(LOG_ERR, "socket %s: chmod %04o: %s", path, (unsigned)mode,
		     strerror(errno));
		return -1;
	}
	return 0;
}

/* Readiness pipe: the daemon reports its start-up status to the process
 * that started it, so a failure to open the socket, the database or the
 * keys is seen by the caller (and its exit code) instead of being hidden
 * behind a fork. */
static int ready_fd = -1;

static int started(int code)
{
	if (ready_fd >= 0) {
		unsigned char c = (unsigned char)code;
		if (write(ready_fd, &c, 1) != 1)
			mlog(LOG_WARNING, "cannot report start-up status");
		close(ready_fd);
		ready_fd = -1;
	}
	return code;
}

static int daemonize(void)
{
	int p[2];
	pid_t pid;

	if (pipe(p) != 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid > 0) {
		unsigned char c = EX_OSERR;
		close(p[1]);
		if (read(p[0], &c, 1) != 1)
			c = EX_OSERR;
		_exit(c);
	}
	close(p[0]);
	ready_fd = p[1];
	setsid();
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid > 0)
		_exit(0);
	if (chdir("/") != 0)
		return -1;
	return 0;
}

/* Detach standard input and output once the daemon runs. */
static void detach_stdio(void)
{
	int fd = open("/dev/null", O_RDWR);

	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	log_stderr_off();
}

/* ---- a prompt stop --------------------------------------------------- */

static int smfi_rc = MI_SUCCESS, smfi_done;
static pthread_t main_thread;

static void *smfi_thread(void *arg)
{
	smfi_rc = smfi_main();
	__atomic_store_n(&smfi_done, 1, __ATOMIC_SEQ_CST);
	pthread_kill(main_thread, SIGTERM); /* the listener ended: stop */
	return NULL;
}

static void *stop_thread(void *arg)
{
	smfi_stop(); /* returns once the listener let go of its socket */
	return NULL;
}

/*
 * Connect to our own listening socket and hang up.  libmilter's listener
 * looks at its stop flag only when select() returns, which without a
 * connection takes up to 5 s.
 */
static void listener_poke(void)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int fd;

	if (listen_fd < 0 ||
	    getsockname(listen_fd, (struct sockaddr *)&ss, &len) != 0)
		return;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		if (in->sin_addr.s_addr == htonl(INADDR_ANY))
			in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr))
			in6->sin6_addr = in6addr_loopback;
	} else if (ss.ss_family != AF_UNIX) {
		return;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	            0);
	if (fd < 0)
		return;
	(void)connect(fd, (struct sockaddr *)&ss, len);
	close(fd);
}

/*
 * Stop without losing a message, and without waiting for idle MTA
 * connections.  libmilter's own stop (its SIGTERM handling, smfi_stop)
 * ends the serving of every session at once: Debian's libmilter, built
 * with the workers pool, then no longer reads from any connection, so a
 * message in flight could not finish.  So: new messages are tempfailed
 * (the MTA retries them), the messages in flight finish while libmilter
 * still serves them (at most 30 s; past that the MTA tempfails them when
 * the connection drops), then libmilter is stopped, and the exit closes
 * the idle connections.
 */
static void stop_serving(int sig)
{
	pthread_t tid;
	int waited;

	mlog(LOG_INFO, "%s: stopping (%d message%s in flight)",
	     __atomic_load_n(&smfi_done, __ATOMIC_SEQ_CST) ? "listener ended"
	     : sig == SIGTERM                              ? "SIGTERM"
	     : sig == SIGINT                               ? "SIGINT"
	                                                   : "SIGHUP",
	     milter_inflight(), milter_inflight() == 1 ? "" : "s");
	milter_stop_begin();
	for (waited = 0; waited < 300; waited++) {
		if (milter_inflight() == 0) {
			/* the last eom returned: give libmilter a moment to
			 * write its final reply */
			usleep(100000);
			if (milter_inflight() == 0)
				break;
		}
		usleep(100000);
	}
	if (pthread_create(&tid, NULL, stop_thread, NULL) == 0)
		pthread_detach(tid);
	for (waited = 0;
	     !__atomic_load_n(&smfi_done, __ATOMIC_SEQ_CST) && waited < 40;
	     waited++) {
		if (waited % 4 == 1)
			listener_poke(); /* once smfi_stop set the flag */
		usleep(50000);
	}
	if (smfi_rc != MI_SUCCESS)
		mlog(LOG_ERR, "smfi_main failed");
	mlog(LOG_INFO,
	     "stopped (%d message%s unfinished, %d connection%s closed)",
	     milter_inflight(), milter_inflight() == 1 ? "" : "s",
	     milter_active(), milter_active() == 1 ? "" : "s");
}

/* The daemon's life from an already loaded configuration; run_daemon()
 * frees cfg whatever the outcome. */
static int serve(struct config *cfg, int foreground)
{
	struct snapshot *s;
	char err[8192], warn[8192];
	struct rlimit rl = { 0, 0 };
	sigset_t set;
	pthread_t tid;
	const char *sock;
	int sig = 0;

	log_open(cfg->syslog_facility, 1);
	audit_spool_enabled = 1; /* the daemon's audit rows may be spooled */
	/* Block these before any thread exists (threads inherit the mask):
	 * the main thread takes them with sigwait.  libmilter's own signal
	 * thread waits for TERM, HUP and INT too, but the kernel hands a
	 * signal sent to the process to the main thread first when that one
	 * waits for it, so the stop is ours (see stop_serving). */
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	setrlimit(RLIMIT_CORE, &rl);
	prctl(PR_SET_DUMPABLE, 0);
	signal(SIGPIPE, SIG_IGN);
	if (!foreground && daemonize() != 0) {
		mlog(LOG_ERR, "cannot daemonize: %s", strerror(errno));
		return started(EX_OSERR);
	}
	if (cfg->pidfile && pidfile_write(cfg->pidfile) != 0)
		return started(EX_CANTCREAT);
	sock = cfg->socket;
	if (strncmp(sock, "unix:", 5) == 0 || strncmp(sock, "local:", 6) == 0)
		unlink(strchr(sock, ':') + 1);
	if (smfi_setconn((char *)sock) != MI_SUCCESS ||
	    smfi_register(milter_desc) != MI_SUCCESS ||
	    smfi_opensocket(1) != MI_SUCCESS) {
		mlog(LOG_ERR, "cannot open milter socket %s", sock);
		return started(EX_UNAVAILABLE);
	}
	listener_find();
	if (socket_permissions(cfg) != 0)
		return started(EX_CONFIG);
	if (drop_privileges(cfg->user) != 0)
		return started(EX_NOPERM);
	/* keys are loaded as the unprivileged user, after the fork */
	if (snapshot_build(conf_path, 0, &s, err, sizeof(err), warn,
	                   sizeof(warn)) != 0) {
		mlog_lines(LOG_ERR, "", err);
		return started(EX_CONFIG);
	}
	if (warn[0])
		mlog_lines(LOG_WARNING, "mailbox ", warn);
	reload_log_decrypt(s);
	milter_set_snapshot(s);
	mlog(LOG_INFO,
	     "smime-milter %s starting on %s: %zu mailboxes, %zu can sign",
	     SMIME_VERSION, sock, s->nentries, s->nusable);
	main_thread = pthread_self();
	/* PostgreSQL: `smimectl reload` on any node reaches us (SIGUSR1) */
	if (listen_start(cfg->database) != 0)
		return started(EX_OSERR);
	if (pthread_create(&tid, NULL, smfi_thread, NULL) != 0) {
		mlog(LOG_ERR, "cannot start the milter thread");
		return started(EX_OSERR);
	}
	pthread_detach(tid);
	if (!foreground) {
		started(EX_OK);
		detach_stdio();
	}
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig != SIGUSR1)
			break;
		reload_snapshot(conf_path);
	}
	stop_serving(sig);
	listen_stop();
	/* the last snapshot's audit queue holds the rows of the last
	 * ~100 ms: write them before exiting (waits up to 5 s, and says so
	 * when rows cannot be written) */
	milter_set_snapshot(NULL);
	if (cfg->pidfile)
		unlink(cfg->pidfile);
	return EX_OK;
}

static int run_daemon(int foreground)
{
	struct config *cfg;
	char err[8192];
	int rc;

	if (config_load(conf_path, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return EX_CONFIG;
	}
	rc = serve(cfg, foreground);
	config_free(cfg);
	return rc;
}

int main(int argc, char **argv)
{
	const char *test_file = NULL, *sender = NULL;
	int opt, foreground = 0, check = 0, inbound = 0;
	static const struct option longopts[] = {
		{ "inbound", no_argument, NULL, 'I' }, { NULL, 0, NULL, 0 }
	};

	malloc_tune();
	audit_reporter = audit_report;
	p11_reporter = audit_report;
	ocsp_reporter = ocsp_report; /* responder failures: once each */
	while ((opt = getopt_long(argc, argv, "c:fnt:s:r:T:Vh", longopts,
	                          NULL)) != -1) {
		switch (opt) {
		case 'I':
			inbound = 1;
			break;
		case 'c':
			conf_path = optarg;
			break;
		case 'f':
			foreground = 1;
			break;
		case 'n':
			check = 1;
			break;
		case 't':
			test_file = optarg;
			break;
		case 's':
			sender = optarg;
			break;
		case 'r':
			opt_rcpt_add(optarg);
			break;
		case 'T': /* fixed signing time (tests) */
			milter_signing_time = (time_t)atoll(optarg);
			break;
		case 'V':
			printf("smime-milter %s\n", SMIME_VERSION);
			return EX_OK;
		default:
			usage();
		}
	}
	if (optind != argc || (inbound && test_file == NULL))
		usage();
	if (check)
		return check_config();
	if (test_file) {
		log_open(NULL, 1);
		return run_offline(test_file, sender, inbound);
	}
	return run_daemon(foreground);
}
