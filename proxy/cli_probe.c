/*
 * cli_probe: the probe command (see cli_probe.h). It reuses the daemon's
 * pieces — the io transport, mbed TLS context, c-ares resolver, reply
 * parser and the detect classifier — on a private event loop, one target
 * at a time.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>

#include <ev.h>
#include <mbedtls/x509.h>

#include "cfg.h"
#include "detect.h"
#include "dns.h"
#include "ehlo.h"
#include "io.h"
#include "jsonw.h"
#include "mxfind.h"
#include "origdst.h"
#include "smtp_reply.h"
#include "tls.h"

#define PROBE_MAXTARGETS 8

enum probe_step {
	PROBE_CONNECT,
	PROBE_GREETING,
	PROBE_EHLO,
	PROBE_HELO,
	PROBE_STARTTLS,
	PROBE_TLS,
	PROBE_EHLO2,
	PROBE_QUIT,
	PROBE_DONE,
};

struct probe_target {
	char name[256]; /* host name for SNI and the certificate check, "" for a literal */
	struct sockaddr_storage ss;
	socklen_t len;
	char addrtext[80];

	/* results */
	int connected;
	char error[200];
	int greeting_code;
	char greeting[256];
	int ehlo_code;
	int starttls_advertised;
	int starttls_code;
	char starttls_reply[256];
	int tls;
	char tls_version[16], tls_cipher[64], fingerprint[65];
	uint32_t verify;
	struct detect_findings findings;
};

struct probe {
	struct ev_loop *loop;
	struct tls_ctx *tls;
	struct dns *dns;
	const char *helo;
	double timeout;
	struct probe_target *t;
	enum probe_step step;
	struct io io;
	ev_timer timer;
	struct smtp_reply reply;
	int reply_started;
};

static void probe_cb(struct io *io, enum io_event ev, void *arg);

static void finish(struct probe *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
finish(struct probe *p, const char *fmt, ...)
{
	if (fmt != NULL && p->t->error[0] == '\0') {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(p->t->error, sizeof(p->t->error), fmt, ap);
		va_end(ap);
	}
	p->step = PROBE_DONE;
	io_close(&p->io);
	ev_timer_stop(p->loop, &p->timer);
	ev_break(p->loop, EVBREAK_ONE);
}

static void
on_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct probe *p = w->data;

	if (p->step == PROBE_TLS)
		detect_tls_failure(DETECT_TLS_HANDSHAKE, "handshake timeout", &p->t->findings);
	finish(p, "timeout after %.0fs", p->timeout);
}

static void
send_line(struct probe *p, const char *line, enum probe_step next)
{
	io_printf(&p->io, "%s\r\n", line);
	p->step = next;
	ev_timer_again(p->loop, &p->timer);
}

static void
first_line(const struct smtp_reply *r, char *out, size_t outsz)
{
	size_t l;
	const char *s = smtp_reply_line(r, 0, &l);

	snprintf(out, outsz, "%.*s", s ? (int)l : 0, s ? s : "");
}

static void
start_tls(struct probe *p)
{
	mbedtls_ssl_context *ssl = calloc(1, sizeof(*ssl));

	if (ssl == NULL) {
		finish(p, "out of memory");
		return;
	}
	mbedtls_ssl_init(ssl);
	if (tls_client_setup(p->tls, ssl, p->t->name[0] ? p->t->name : NULL, NULL) == -1) {
		mbedtls_ssl_free(ssl);
		free(ssl);
		finish(p, "TLS setup failed");
		return;
	}
	p->step = PROBE_TLS;
	io_start_tls(&p->io, ssl, 0);
}

static void
on_reply(struct probe *p, struct smtp_reply *r)
{
	struct probe_target *t = p->t;

	switch (p->step) {
	case PROBE_GREETING:
		t->greeting_code = r->code;
		first_line(r, t->greeting, sizeof(t->greeting));
		detect_greeting(r, &t->findings);
		if (r->code != 220) {
			finish(p, "greeting refused: %s", t->greeting);
			return;
		}
		{
			char line[300];
			snprintf(line, sizeof(line), "EHLO %s", p->helo);
			send_line(p, line, PROBE_EHLO);
		}
		return;
	case PROBE_EHLO:
	case PROBE_HELO:
		if (p->step == PROBE_EHLO)
			t->ehlo_code = r->code;
		if (smtp_reply_class(r) == 2) {
			if (p->step == PROBE_EHLO)
				t->starttls_advertised = detect_ehlo(r, &t->findings);
			/* Try STARTTLS even when it was not advertised: it
			 * may have been stripped on the way. */
			send_line(p, "STARTTLS", PROBE_STARTTLS);
			return;
		}
		if (p->step == PROBE_EHLO) {
			char line[300];
			detect_ehlo_refused(r, &t->findings);
			snprintf(line, sizeof(line), "HELO %s", p->helo);
			send_line(p, line, PROBE_HELO);
			return;
		}
		finish(p, "EHLO and HELO refused");
		return;
	case PROBE_STARTTLS:
		t->starttls_code = r->code;
		first_line(r, t->starttls_reply, sizeof(t->starttls_reply));
		detect_starttls_reply(r, t->starttls_advertised, iobuf_used(&p->io.in),
		                      &t->findings);
		if (t->ehlo_code / 100 == 2 && !t->starttls_advertised)
			detect_starttls_stripped(r, &t->findings);
		if (r->code != 220) {
			send_line(p, "QUIT", PROBE_QUIT);
			return;
		}
		if (iobuf_used(&p->io.in) > 0) {
			finish(p, "plaintext injected after the 220 to STARTTLS");
			return;
		}
		start_tls(p);
		return;
	case PROBE_EHLO2:
		send_line(p, "QUIT", PROBE_QUIT);
		return;
	case PROBE_QUIT:
		finish(p, NULL);
		return;
	default:
		return;
	}
}

static void
on_data(struct probe *p)
{
	while (p->step != PROBE_DONE && p->step != PROBE_TLS) {
		const char *line;
		size_t len, adv;
		int rc = iobuf_getline(&p->io.in, SMTP_REPLY_MAXLINE, &line, &len, &adv);
		enum smtp_reply_status st;

		if (rc == 0)
			return;
		if (rc == -1) {
			finish(p, "reply line too long");
			return;
		}
		if (!p->reply_started) {
			smtp_reply_init(&p->reply, SMTP_REPLY_MAXLINES);
			p->reply_started = 1;
		}
		st = smtp_reply_feed(&p->reply, line, len);
		iobuf_consume(&p->io.in, adv);
		if (st == SMTP_REPLY_MORE)
			continue;
		p->reply_started = 0;
		if (st != SMTP_REPLY_DONE) {
			if (p->step == PROBE_GREETING)
				(void)detect_greeting_line(line, len, &p->t->findings);
			finish(p, "malformed reply: %s", smtp_reply_strstatus(st));
			return;
		}
		on_reply(p, &p->reply);
	}
}

static void
on_tls_ready(struct probe *p)
{
	struct probe_target *t = p->t;
	char line[300];

	t->tls = 1;
	t->verify = tls_verify_peer(p->tls, p->io.ssl, t->name[0] ? t->name : NULL);
	snprintf(t->tls_version, sizeof(t->tls_version), "%s", io_tls_version(&p->io));
	snprintf(t->tls_cipher, sizeof(t->tls_cipher), "%s", io_tls_cipher(&p->io));
	(void)tls_peer_fingerprint(p->io.ssl, t->fingerprint, sizeof(t->fingerprint));
	tls_verify_findings(t->verify, t->name[0] != '\0', &t->findings);
	snprintf(line, sizeof(line), "EHLO %s", p->helo);
	send_line(p, line, PROBE_EHLO2);
}

static void
probe_cb(struct io *io, enum io_event ev, void *arg)
{
	struct probe *p = arg;

	switch (ev) {
	case IO_CONNECTED:
		p->t->connected = 1;
		p->step = PROBE_GREETING;
		ev_timer_again(p->loop, &p->timer);
		break;
	case IO_DATAIN:
		on_data(p);
		break;
	case IO_TLSREADY:
		on_tls_ready(p);
		break;
	case IO_EOF:
	case IO_ERROR:
		if (p->step == PROBE_TLS) {
			tls_handshake_findings(io->tls_err, io->tls_alert,
			                       io->err[0] ? io->err : "closed", &p->t->findings);
			finish(p, "TLS handshake failed: %s", io->err[0] ? io->err : "closed");
			break;
		}
		on_data(p); /* a last reply before the close still counts */
		if (p->step == PROBE_QUIT || p->step == PROBE_DONE)
			finish(p, NULL);
		else if (!p->t->connected)
			finish(p, "%s", io->err);
		else
			finish(p, "connection closed by the server (%s)",
			       ev == IO_ERROR ? io->err : "EOF");
		break;
	default:
		break;
	}
}

static void
probe_one(struct probe *p, struct probe_target *t)
{
	p->t = t;
	detect_init(&t->findings);
	io_init(&p->io, p->loop, -1, probe_cb, p, 65536, 65536, 0);
	p->reply_started = 0;
	p->step = PROBE_CONNECT;
	ev_init(&p->timer, on_timeout);
	p->timer.data = p;
	p->timer.repeat = p->timeout;
	if (io_connect(&p->io, (struct sockaddr *)&t->ss, t->len) == -1) {
		snprintf(t->error, sizeof(t->error), "%s", p->io.err);
		io_close(&p->io);
		return;
	}
	ev_timer_again(p->loop, &p->timer);
	ev_run(p->loop, 0);
	io_close(&p->io);
	ev_timer_stop(p->loop, &p->timer);
	detect_combine(&t->findings, NULL);
}

/* --- target resolution ------------------------------------------------ */

struct resolve {
	struct probe_target *targets;
	int n;
	int port;
	int pending;
	char name[256];
	char error[200];
	struct ev_loop *loop;
};

static void
add_addrs(struct resolve *r, const char *name, const struct dns_addr *a, int n)
{
	for (int i = 0; i < n && r->n < PROBE_MAXTARGETS; i++) {
		struct probe_target *t = &r->targets[r->n++];
		memset(t, 0, sizeof(*t));
		snprintf(t->name, sizeof(t->name), "%s", name);
		memcpy(&t->ss, &a[i].ss, a[i].len);
		t->len = a[i].len;
		sockaddr_set_port((struct sockaddr *)&t->ss, r->port);
		sockaddr_text((struct sockaddr *)&t->ss, t->addrtext, sizeof(t->addrtext));
	}
}

static void
on_addrs(void *arg, enum dns_status st, const struct dns_addr *a, int n)
{
	struct resolve *r = arg;

	if (st != DNS_OK)
		snprintf(r->error, sizeof(r->error), "%s: %s", r->name, dns_strstatus(st));
	else
		add_addrs(r, r->name, a, n);
	r->pending = 0;
	ev_break(r->loop, EVBREAK_ONE);
}

static void
on_mx(void *arg, const struct mxfind_result *res)
{
	struct resolve *r = arg;

	if (res->nhosts == 0)
		snprintf(r->error, sizeof(r->error), "%s: no MX host (%s%s)", r->name,
		         dns_strstatus(res->mx_status), res->null_mx ? ", null MX" : "");
	for (int i = 0; i < res->nhosts; i++)
		add_addrs(r, res->hosts[i].name, res->hosts[i].addrs, res->hosts[i].naddrs);
	r->pending = 0;
	ev_break(r->loop, EVBREAK_ONE);
}

/* --- output ----------------------------------------------------------- */

static int
worst(const struct probe_target *t)
{
	int w = -1;

	for (int i = 0; i < t->findings.n; i++)
		if ((int)t->findings.f[i].severity > w)
			w = (int)t->findings.f[i].severity;
	return w;
}

static void
print_text(const struct probe_target *t)
{
	printf("%s (%s)\n", t->addrtext, t->name[0] ? t->name : "no name");
	if (!t->connected) {
		printf("  connect      failed: %s\n\n", t->error);
		return;
	}
	printf("  greeting     %s\n", t->greeting[0] ? t->greeting : "-");
	printf("  STARTTLS     %s in EHLO; answer: %s\n",
	       t->starttls_advertised ? "advertised" : "NOT advertised",
	       t->starttls_reply[0] ? t->starttls_reply : "-");
	if (t->tls)
		printf("  TLS          %s %s, certificate %s\n  fingerprint  %s\n", t->tls_version,
		       t->tls_cipher, tls_verify_reason(t->verify), t->fingerprint);
	else
		printf("  TLS          not established\n");
	if (t->error[0])
		printf("  error        %s\n", t->error);
	if (t->findings.n == 0)
		printf("  findings     none\n");
	for (int i = 0; i < t->findings.n; i++) {
		const struct detect_finding *f = &t->findings.f[i];
		printf("  %-8s     %s%s%s\n", detect_severity_name(f->severity),
		       detect_event_name(f->event), f->evidence[0] ? ": " : "", f->evidence);
	}
	printf("\n");
}

static void
print_json(const struct probe_target *t)
{
	struct jsonw j;

	jsonw_begin(&j);
	jsonw_str(&j, "target", t->addrtext);
	jsonw_str(&j, "name", t->name[0] ? t->name : NULL);
	jsonw_bool(&j, "connected", t->connected);
	jsonw_str(&j, "greeting", t->greeting[0] ? t->greeting : NULL);
	jsonw_bool(&j, "starttls_advertised", t->starttls_advertised);
	jsonw_int(&j, "starttls_code", t->starttls_code);
	jsonw_bool(&j, "tls", t->tls);
	jsonw_str(&j, "tls_version", t->tls ? t->tls_version : NULL);
	jsonw_str(&j, "tls_cipher", t->tls ? t->tls_cipher : NULL);
	jsonw_str(&j, "certificate", t->tls ? tls_verify_reason(t->verify) : NULL);
	jsonw_str(&j, "fingerprint", t->tls ? t->fingerprint : NULL);
	jsonw_str(&j, "error", t->error[0] ? t->error : NULL);
	jsonw_array_begin(&j, "findings");
	for (int i = 0; i < t->findings.n; i++) {
		char buf[DETECT_EVIDENCE_MAX + 64];
		const struct detect_finding *f = &t->findings.f[i];
		snprintf(buf, sizeof(buf), "%s:%s%s%s", detect_event_name(f->event),
		         detect_severity_name(f->severity), f->evidence[0] ? ":" : "", f->evidence);
		jsonw_array_str(&j, buf);
	}
	jsonw_array_end(&j);
	jsonw_end(&j);
	printf("%s\n", j.buf);
}

static void
usage(void)
{
	fprintf(stderr,
	        "usage: stsproxy probe [-c FILE] [--json] [--helo NAME] [--timeout S] HOST[:PORT]\n"
	        "       stsproxy probe [-c FILE] [--json] --domain DOMAIN\n"
	        "HOST may be a name (used for SNI and the certificate check) or an address;\n"
	        "--domain probes every MX host of DOMAIN. Exit: 0 clean, 1 downgrade finding\n"
	        "(warning or alert), 2 a target could not be probed, 3 usage.\n");
}

int
cli_probe_main(int argc, char *argv[])
{
	static const struct option longopts[] = {
	        {"config", required_argument, NULL, 'c'},  {"json", no_argument, NULL, 'j'},
	        {"domain", required_argument, NULL, 'D'},  {"helo", required_argument, NULL, 'H'},
	        {"timeout", required_argument, NULL, 'T'}, {"sni", required_argument, NULL, 'S'},
	        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
	};
	struct probe_target targets[PROBE_MAXTARGETS];
	struct resolve r;
	struct probe p;
	const char *path = NULL, *domain = NULL, *sni = NULL;
	int json = 0, ch, rc = 0;
	char err[512], host[256];
	struct cfg *cfg;

	memset(&p, 0, sizeof(p));
	p.helo = "probe.stsproxy.invalid";
	p.timeout = 30;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:jD:H:T:S:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'D':
			domain = optarg;
			break;
		case 'H':
			p.helo = optarg;
			break;
		case 'T':
			p.timeout = atof(optarg);
			break;
		case 'S':
			sni = optarg;
			break;
		default:
			usage();
			return 3;
		}
	}
	if ((domain == NULL) == (optind >= argc) || p.timeout <= 0) {
		usage();
		return 3;
	}
	cfg = path ? cfg_load(path, err, sizeof(err)) : cfg_defaults();
	if (cfg == NULL) {
		fprintf(stderr, "%s\n", err);
		return 3;
	}
	p.loop = ev_loop_new(EVFLAG_AUTO);
	if ((p.tls = tls_new(cfg, err, sizeof(err))) == NULL ||
	    (p.dns = dns_new(p.loop, cfg, err, sizeof(err))) == NULL) {
		fprintf(stderr, "stsproxy probe: %s\n", err);
		return 3;
	}
	memset(&r, 0, sizeof(r));
	r.targets = targets;
	r.loop = p.loop;
	r.port = 25;
	r.pending = 1;
	if (domain != NULL) {
		snprintf(r.name, sizeof(r.name), "%s", domain);
		if (mxfind_start(p.dns, domain, NULL, on_mx, &r) != NULL)
			ev_run(p.loop, 0);
	} else {
		const char *arg = argv[optind];
		const char *colon = strrchr(arg, ':');
		/* HOST:PORT, [v6]:PORT or a bare address/name */
		if (arg[0] == '[') {
			const char *end = strchr(arg, ']');
			snprintf(host, sizeof(host), "%.*s", end ? (int)(end - arg - 1) : 0,
			         arg + 1);
			if (end && end[1] == ':')
				r.port = atoi(end + 2);
		} else if (colon != NULL && strchr(arg, ':') == colon) {
			snprintf(host, sizeof(host), "%.*s", (int)(colon - arg), arg);
			r.port = atoi(colon + 1);
		} else {
			snprintf(host, sizeof(host), "%s", arg);
		}
		if (r.port <= 0 || r.port > 65535) {
			usage();
			return 3;
		}
		snprintf(r.name, sizeof(r.name), "%s", host);
		if (dns_query_addrs(p.dns, host, on_addrs, &r) != NULL)
			ev_run(p.loop, 0);
		/* a literal has no name to check the certificate against */
		for (int i = 0; i < r.n; i++) {
			struct sockaddr_storage tmp;
			socklen_t tl;
			if (sockaddr_parse_ip(host, 0, &tmp, &tl) == 0)
				targets[i].name[0] = '\0';
		}
	}
	if (sni != NULL)
		for (int i = 0; i < r.n; i++)
			snprintf(targets[i].name, sizeof(targets[i].name), "%s", sni);
	if (r.n == 0) {
		fprintf(stderr, "stsproxy probe: %s\n", r.error[0] ? r.error : "no address");
		rc = 2;
	}
	for (int i = 0; i < r.n; i++) {
		int w;
		probe_one(&p, &targets[i]);
		if (json)
			print_json(&targets[i]);
		else
			print_text(&targets[i]);
		w = worst(&targets[i]);
		if (!targets[i].connected && rc < 2)
			rc = 2;
		else if (w >= DETECT_SEV_WARNING && rc == 0)
			rc = 1;
	}
	dns_free(p.dns);
	tls_free(p.tls);
	ev_loop_destroy(p.loop);
	cfg_unref(cfg);
	return rc;
}
