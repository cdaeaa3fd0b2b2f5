#!/bin/sh
# Regenerate the test PKI used by tests/unit/test_io.c and test_tls_verify.c:
# a CA and a server certificate for "mx.test" (SAN mx.test, *.mx.test),
# ECDSA P-256, valid from 2000 to 2125 so that neither a slow CI clock nor
# time makes the committed files invalid. Not secret: test use only.
# Also, all for mx.test unless said otherwise:
#   inter.pem     leaf signed by an intermediate CA, followed by it (a chain)
#   clientonly.pem  extendedKeyUsage clientAuth only
#   kexonly.pem   keyUsage keyEncipherment only (no digitalSignature)
#   expired.pem   valid 2000-2001
#   stranger.pem  issued by a CA that is not ca.pem
set -eu
cd "$(dirname "$0")"
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT

mkdir "$t/new"
: >"$t/index"
echo 1000 >"$t/serial"
cat >"$t/ca.cnf" <<CNF
[ca]
default_ca = test
[test]
dir = $t
database = $t/index
new_certs_dir = $t/new
serial = $t/serial
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
[any]
organizationName = optional
commonName = supplied
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[v3_server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:mx.test,DNS:*.mx.test
authorityKeyIdentifier = keyid
[v3_inter]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[v3_clientonly]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectAltName = DNS:mx.test
[v3_kexonly]
basicConstraints = critical,CA:FALSE
keyUsage = critical,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:mx.test
CNF
dates="-startdate 20000101000000Z -enddate 21250101000000Z"

openssl ecparam -name prime256v1 -genkey -noout -out "$t/ca.key"
openssl req -new -key "$t/ca.key" -subj "/O=stsproxy tests/CN=stsproxy test CA" -out "$t/ca.csr"
openssl ca -batch -config "$t/ca.cnf" -selfsign -keyfile "$t/ca.key" -in "$t/ca.csr" \
	-extensions v3_ca $dates -notext -out ca.pem

openssl ecparam -name prime256v1 -genkey -noout -out "$t/server.ec"
openssl pkcs8 -topk8 -nocrypt -in "$t/server.ec" -out server.key
openssl req -new -key server.key -subj "/O=stsproxy tests/CN=mx.test" -out "$t/server.csr"
openssl ca -batch -config "$t/ca.cnf" -cert ca.pem -keyfile "$t/ca.key" -in "$t/server.csr" \
	-extensions v3_server $dates -notext -out server.pem
chmod 644 server.key
openssl verify -CAfile ca.pem server.pem

# leaf CN=$1 from key server.key, signed by CA cert $2 / key $3, extensions
# $4, validity $5, into $6
leaf() {
	openssl req -new -key server.key -subj "/O=stsproxy tests/CN=$1" -out "$t/leaf.csr"
	openssl ca -batch -config "$t/ca.cnf" -cert "$2" -keyfile "$3" -in "$t/leaf.csr" \
		-extensions "$4" $5 -notext -out "$6"
}
openssl ecparam -name prime256v1 -genkey -noout -out "$t/inter.key"
openssl req -new -key "$t/inter.key" -subj "/O=stsproxy tests/CN=stsproxy test intermediate" \
	-out "$t/inter.csr"
openssl ca -batch -config "$t/ca.cnf" -cert ca.pem -keyfile "$t/ca.key" -in "$t/inter.csr" \
	-extensions v3_inter $dates -notext -out "$t/inter.pem"
leaf mx.test "$t/inter.pem" "$t/inter.key" v3_server "$dates" "$t/leaf.pem"
cat "$t/leaf.pem" "$t/inter.pem" >inter.pem
leaf mx.test ca.pem "$t/ca.key" v3_clientonly "$dates" clientonly.pem
leaf mx.test ca.pem "$t/ca.key" v3_kexonly "$dates" kexonly.pem
leaf mx.test ca.pem "$t/ca.key" v3_server "-startdate 20000101000000Z -enddate 20010101000000Z" \
	expired.pem
openssl ecparam -name prime256v1 -genkey -noout -out "$t/other.key"
openssl req -new -x509 -key "$t/other.key" -subj "/O=elsewhere/CN=other CA" -days 36500 \
	-out "$t/other.pem"
leaf mx.test "$t/other.pem" "$t/other.key" v3_server "$dates" stranger.pem
openssl verify -CAfile ca.pem -untrusted inter.pem inter.pem
