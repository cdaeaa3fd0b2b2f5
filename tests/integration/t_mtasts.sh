#!/usr/bin/env bash
# MTA-STS (RFC 8461) end to end: nsd serves the _mta-sts TXT records and MX
# sets, nginx in the mx namespace serves the policies over HTTPS with the
# test CA, and stsproxy's operator tool ("stsproxy policy DOMAIN --json")
# gives the verdict for each case:
#   valid enforce, testing, none, no TXT, 404, 301 (not followed), wrong-name
#   certificate on the policy host, two TXT records, invalid policy, MX not in
#   the policy, two-label wildcard, id change picked up, policy server down
#   with a cached policy, DNS SERVFAIL (with and without a cached policy).
# Then through legacy Postfix -> stsproxy (mode "enforce") -> receiving
# Postfix: the enforce domain is delivered over verified TLS, an
# unsatisfiable enforce domain stays queued with 4.7.x (never bounced), a
# testing domain is delivered with the failure logged, and after a restart
# with the policy host down and the TXT record gone stsproxy still enforces
# from its cache file.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
it_init 420
proxy_require
nginx_require

Z=sts.test # the zone of the per-case domains
SERVFAIL_PID=

# ---- the policies: nginx on $MX1_4:443, one site per case --------------------------
write_policies() {
	nginx_policy enforce 'version: STSv1\nmode: enforce\nmx: mx1.example.test\nmax_age: 86400\n'
	nginx_policy testing 'version: STSv1\r\nmode: testing\r\nmx: mx9.nowhere.test\r\nmax_age: 86400\r\n'
	nginx_policy none 'version: STSv1\nmode: none\nmax_age: 86400\n'
	nginx_policy two 'version: STSv1\nmode: enforce\nmx: mx1.example.test\nmax_age: 86400\n'
	nginx_policy invalid 'version: STSv1\nmode: enforcing\nmx: mx1.example.test\nmax_age: 86400\n'
	nginx_policy unsat 'version: STSv1\nmode: enforce\nmx: mx9.nowhere.test\nmax_age: 86400\n'
	nginx_policy wild 'version: STSv1\nmode: enforce\nmx: *.example.test\nmax_age: 86400\n'
	nginx_policy change 'version: STSv1\nmode: enforce\nmx: mx1.example.test\nmax_age: 86400\n'
	nginx_policy down 'version: STSv1\nmode: enforce\nmx: mx1.example.test\nmax_age: 86400\n'
	nginx_policy mail 'version: STSv1\nmode: enforce\nmx: *.example.test\nmax_age: 86400\n'
	mkdir -p "$T/www/notfound"
}

# policy_servers: the nginx server blocks, mta-sts.CASE.$Z for each case plus
# mta-sts.$MAIL_DOMAIN, a 301 and one with the wrong certificate.
policy_servers() {
	local n
	for n in enforce testing none two invalid unsat wild change down notfound; do
		printf '\tserver { listen %s:443 ssl; server_name mta-sts.%s.%s; root %s/www/%s; }\n' \
			"$MX1_4" "$n" "$Z" "$T" "$n"
	done
	printf '\tserver { listen %s:443 ssl; server_name mta-sts.%s; root %s/www/mail; }\n' \
		"$MX1_4" "$MAIL_DOMAIN" "$T"
	printf '\tserver { listen %s:443 ssl; server_name mta-sts.redirect.%s; return 301 https://mta-sts.enforce.%s/.well-known/mta-sts.txt; }\n' \
		"$MX1_4" "$Z" "$Z"
	printf '\tserver { listen %s:443 ssl; server_name mta-sts.wrongcert.%s; root %s/www/enforce; ssl_certificate %s/pki/wrong.pem; ssl_certificate_key %s/pki/wrong.key; }\n' \
		"$MX1_4" "$Z" "$T" "$T" "$T"
}

# ---- DNS ----------------------------------------------------------------------
# sts_zone CHANGE_ID DOWN_ID [UNSAT_TXT]: the zone of the per-case domains.
sts_zone() {
	local chg=$1 down=$2 unsat_txt=${3:-yes} n r=""
	for n in enforce testing none notfound redirect wrongcert two invalid unsat wild change down notxt neverseen; do
		r+="$n IN MX 10 mx1.example.test.
mta-sts.$n IN A $MX1_4
"
	done
	r+='_mta-sts.enforce IN TXT "v=STSv1; id=enf1;"
_mta-sts.testing IN TXT "v=STSv1;" " id=test1"
_mta-sts.none IN TXT "v=STSv1; id=none1"
_mta-sts.notfound IN TXT "v=STSv1; id=nf1"
_mta-sts.redirect IN TXT "v=STSv1; id=redir1"
_mta-sts.wrongcert IN TXT "v=STSv1; id=wc1"
_mta-sts.two IN TXT "v=STSv1; id=two1"
_mta-sts.two IN TXT "v=STSv1; id=two2"
_mta-sts.invalid IN TXT "v=STSv1; id=inv1"
_mta-sts.wild IN TXT "v=STSv1; id=wild1"
wild IN MX 5 a.b.example.test.
_mta-sts.notxt IN TXT "v=spf1 -all"
_mta-sts.neverseen IN TXT "v=STSv1; id=never1"
'
	r+="_mta-sts.change IN TXT \"v=STSv1; id=$chg\"
_mta-sts.down IN TXT \"v=STSv1; id=$down\"
"
	[ "$unsat_txt" = yes ] && r+='_mta-sts.unsat IN TXT "v=STSv1; id=unsat1"
'
	dns_zone_add "$Z" "$r" "${4:-}"
}

# A DNS server that answers SERVFAIL to everything, on nsd's address.
servfail_start() {
	ip netns exec "$NS_MX" "$PY" - "$DNS4" >>"$T/servfail.log" 2>&1 <<'EOF' &
import socket, sys, threading
from dnslib import DNSRecord, RCODE
addr = sys.argv[1]
def answer(data):
    q = DNSRecord.parse(data)
    r = q.reply()
    r.header.rcode = RCODE.SERVFAIL
    return r.pack()
def tcp():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, 53)); s.listen(8)
    while True:
        c, _ = s.accept()
        try:
            n = int.from_bytes(c.recv(2), "big"); d = c.recv(n)
            out = answer(d); c.sendall(len(out).to_bytes(2, "big") + out)
        except Exception:
            pass
        c.close()
threading.Thread(target=tcp, daemon=True).start()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind((addr, 53))
print("READY", flush=True)
while True:
    d, a = u.recvfrom(4096)
    try:
        u.sendto(answer(d), a)
    except Exception:
        pass
EOF
	SERVFAIL_PID=$!
	wait_for 5 "SERVFAIL server ready" grep -q READY "$T/servfail.log" ||
		it_abort "the SERVFAIL server did not start: $(tail -n 5 "$T/servfail.log")"
}

servfail_stop() {
	[ -n "$SERVFAIL_PID" ] || return 0
	kill -TERM "$SERVFAIL_PID" 2>/dev/null
	wait "$SERVFAIL_PID" 2>/dev/null
	SERVFAIL_PID=
}

# ---- the operator tool ---------------------------------------------------------
# verdict DOMAIN: run "stsproxy policy DOMAIN --json" in the router namespace;
# the JSON goes to $T/v-DOMAIN.json, the exit code to $T/v-DOMAIN.rc.
verdict() {
	local rc=0
	nsx "$NS_ROUTER" timeout 60 "$STSPROXY_BIN" policy "$1" --json -c "$T/proxy.conf" \
		>"$T/v-$1.json" 2>"$T/v-$1.err" || rc=$?
	echo "$rc" >"$T/v-$1.rc"
	say "stsproxy policy $1: exit $rc: $(cut -c1-300 "$T/v-$1.json")"
}

# jq-less field access: vf DOMAIN PYTHON-EXPR (j is the JSON object)
vf() {
	"$PY" -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' \
		"$T/v-$1.json" "$2" 2>/dev/null
}
vrc() { cat "$T/v-$1.rc"; }
_not_running_nginx() { [ -z "$NGINX_PID" ] && ! nsx "$NS_MX" ss -Hltn "sport = :443" | grep -q .; }
cache_list_has() {
	nsx "$NS_ROUTER" "$STSPROXY_BIN" cache list -c "$T/proxy.conf" | grep -q "^$1 "
}
# deferrals of unsat mail by stsproxy's policy (4.7.x), not by a refused connect
_unsat_deferrals_ge() { _sender_log_count_ge "to=<user@unsat.$Z>.*dsn=4\.7\.[0-9].*status=deferred" "$1"; }

# expect DOMAIN EXIT VERDICT [REASON]: assertions on one verdict.
expect() {
	local d=$1 want_rc=$2 want_v=$3 want_r=${4:-}
	check "$d: exit code $want_rc (got $(vrc "$d"))" [ "$(vrc "$d")" = "$want_rc" ]
	check "$d: verdict $want_v (got $(vf "$d" "j['verdict']"))" [ "$(vf "$d" "j['verdict']")" = "$want_v" ]
	[ -n "$want_r" ] &&
		check "$d: reason $want_r (got $(vf "$d" "j['reason']"))" [ "$(vf "$d" "j['reason']")" = "$want_r" ]
	return 0
}

# ---- set-up ------------------------------------------------------------------------
step "building topology, PKI, DNS, policy hosts, mx and sender"
topo_up
ca_make
san=""
for n in enforce testing none notfound redirect two invalid unsat wild change down; do
	san+="DNS:mta-sts.$n.$Z,"
done
_cert sts "${san}DNS:mta-sts.$MAIL_DOMAIN" "mta-sts.enforce.$Z"
dns_mail_zone_sts mail1
sts_zone chg1 down1 yes norestart
dns_start
write_policies
nginx_conf "$(policy_servers)"
nginx_start
mx_start mx
# the receiving MTA takes mail for the test domains too
nsx "$NS_MX" postconf -c "$T/mx/conf" -e \
	"virtual_mailbox_domains = $MAIL_DOMAIN, testing.$Z, unsat.$Z" >/dev/null
nsx "$NS_MX" postfix -c "$T/mx/conf" reload >/dev/null 2>&1
sender_start none ipv4

PCONF="$(proxy_config enforce redirect)
sts = { cache_file = \"$T/sts.cache\"; fetch_timeout = 10.0; };"
printf '%s\n' "$PCONF" >"$T/proxy.conf"

# ---- per-domain verdicts ---------------------------------------------------------------
step "stsproxy policy: one verdict per case"
for d in enforce testing none notxt notfound redirect wrongcert two invalid unsat wild; do
	verdict "$d.$Z"
done
D=enforce.$Z
expect "$D" 0 enforce ok
check "$D: id enf1 fetched now" [ "$(vf "$D" "j['policy']['id'], j['policy']['from_cache']")" = "('enf1', False)" ]
check "$D: MX mx1.example.test matches its pattern" [ "$(vf "$D" "[(h['name'], h['matches']) for h in j['mx_hosts']]")" = "[('mx1.example.test', True)]" ]
check "$D: the policy expires in about a day" [ "$(vf "$D" "86000 < j['policy']['expires_in'] <= 86400")" = True ]
check "$D: the cache file holds it now" [ "$(vf "$D" "j['cache']['after']['state']")" = fresh ]
D=testing.$Z
expect "$D" 0 testing ok
check "$D: split TXT strings read as one record" [ "$(vf "$D" "j['txt']['selected']")" = "v=STSv1; id=test1" ]
check "$D: CRLF policy parsed" [ "$(vf "$D" "j['policy']['valid']")" = True ]
expect "none.$Z" 0 none ok
expect "notxt.$Z" 1 no-policy no_record
D=notfound.$Z
expect "$D" 2 failed fetch_failed
check "$D: the error names HTTP 404" grep -q 'HTTP status 404' "$T/v-$D.json"
D=redirect.$Z
expect "$D" 2 failed fetch_failed
check "$D: the 301 was not followed" grep -q '301 redirect, not followed' "$T/v-$D.json"
D=wrongcert.$Z
expect "$D" 2 failed fetch_failed
check "$D: the certificate was refused" grep -qi 'TLS' "$T/v-$D.json"
D=two.$Z
expect "$D" 2 failed record_invalid
check "$D: both records are shown" [ "$(vf "$D" "len(j['txt']['records'])")" = 2 ]
D=invalid.$Z
expect "$D" 2 failed policy_invalid
check "$D: the parse error names the bad mode" grep -q 'enforcing' "$T/v-$D.json"
D=unsat.$Z
expect "$D" 0 enforce ok
check "$D: MX mx1.example.test is not in the policy" [ "$(vf "$D" "[(h['name'], h['matches']) for h in j['mx_hosts']]")" = "[('mx1.example.test', False)]" ]
D=wild.$Z
expect "$D" 0 enforce ok
check "$D: *.example.test matches mx1.example.test, not a.b.example.test (two labels)" \
	[ "$(vf "$D" "sorted((h['name'], h['matches']) for h in j['mx_hosts'])")" = "[('a.b.example.test', False), ('mx1.example.test', True)]" ]

step "policy id change: the new policy is picked up"
verdict "change.$Z"
expect "change.$Z" 0 enforce ok
nginx_policy change 'version: STSv1\nmode: testing\nmx: mx1.example.test\nmax_age: 86400\n'
sts_zone chg2 down1 yes
verdict "change.$Z"
expect "change.$Z" 0 testing ok
check "change.$Z: id chg2, fetched now" [ "$(vf "change.$Z" "j['policy']['id'], j['policy']['from_cache']")" = "('chg2', False)" ]

step "policy server down with a cached policy: the cache keeps applying"
verdict "down.$Z"
expect "down.$Z" 0 enforce ok
nginx_stop
sts_zone chg2 down2 yes
verdict "down.$Z"
expect "down.$Z" 0 enforce fetch_failed
check "down.$Z: answered from the cache (id down1)" [ "$(vf "down.$Z" "j['policy']['id'], j['policy']['from_cache']")" = "('down1', True)" ]
check "down.$Z: the failure is recorded in the cache" [ -n "$(vf "down.$Z" "j['cache']['after']['last_error']")" ]

step "DNS answering SERVFAIL"
dns_stop
servfail_start
verdict "enforce.$Z"
expect "enforce.$Z" 0 enforce dns_temporary
check "enforce.$Z: from the cache" [ "$(vf "enforce.$Z" "j['policy']['from_cache']")" = True ]
verdict "neverseen.$Z"
expect "neverseen.$Z" 2 temperror dns_temporary
servfail_stop
dns_start
nginx_start

step "stsproxy cache list / show / flush"
check "cache list names enforce.$Z" cache_list_has "enforce.$Z"
check "cache show none.$Z exits 0" nsx "$NS_ROUTER" "$STSPROXY_BIN" cache show "none.$Z" -c "$T/proxy.conf"
check "cache flush none.$Z exits 0" nsx "$NS_ROUTER" "$STSPROXY_BIN" cache flush "none.$Z" -c "$T/proxy.conf"
check_not "cache show none.$Z fails after the flush" nsx "$NS_ROUTER" "$STSPROXY_BIN" cache show "none.$Z" -c "$T/proxy.conf"

# ---- end to end -------------------------------------------------------------------------
step "end to end: legacy Postfix -> stsproxy (enforce) -> receiving Postfix"
router_redirect on
proxy_start "$PCONF"

sender_send "$RCPT" sts-enforce
check "the enforce-domain mail arrives" mx_wait_mail 1 60
check "it arrived over TLS: $(mx_received sts-enforce)" mx_received_tls sts-enforce
check "stsproxy applied the MTA-STS policy (verify) for $MAIL_DOMAIN" \
	proxy_log_grep "$MAIL_DOMAIN policy=mta-sts/verify verdict=ok"

sender_send "user@unsat.$Z" sts-unsat
check "the unsatisfiable enforce mail is deferred" sender_wait_log "to=<user@unsat.$Z>.*status=deferred" 60
check "with a 4.7.x code: $(sender_status_lines | grep -F "unsat.$Z" | tail -n 1)" \
	sender_log_grep "to=<user@unsat.$Z>.*status=deferred .*4\.7\.[0-9]"
check "stsproxy logged the policy failure for unsat.$Z" proxy_log_grep "\"policy_failure\".*unsat\.$Z|unsat\.$Z.*\"policy_failure\""

sender_send "user@testing.$Z" sts-testing
check "the testing-domain mail arrives" mx_wait_mail 2 60
check "the testing failure was logged" proxy_log_grep 'policy_failure_testing'
check "the session record says testing" proxy_log_grep "testing\.$Z policy=mta-sts/verify/testing"

step "restart: the cache is enforced before any network access"
proxy_stop
nginx_stop
sts_zone chg2 down2 no # unsat.sts.test loses its TXT record
proxy_start "$PCONF"
check "stsproxy loaded the cache file at start-up" proxy_log_grep 'cached polic(y|ies) loaded'
n0=$(sender_log_count "to=<user@unsat.$Z>.*dsn=4\.7\.[0-9].*status=deferred")
sender_send "user@unsat.$Z" sts-unsat-2
sender_flush
check "after the restart both unsat messages are deferred by the cached policy (4.7.x)" \
	wait_for 60 "two more 4.7.x unsat deferrals" _unsat_deferrals_ge $((n0 + 2))
check "no policy fetch was possible after the restart (policy host down, TXT gone)" \
	_not_running_nginx
check "both unsat messages are still queued at the sender" _sender_queue_is 2
check_not "nothing bounced" sender_log_grep 'status=bounced'
check_not "no unsat mail reached the mx" mx_body_has sts-unsat SECRET-BODY-sts-unsat
check "exactly two messages at the mx" [ "$(mx_mail_count)" -eq 2 ]
check "stsproxy is still running" proxy_alive

finish
