#!/bin/sh
# Regenerate the test PKI used by tests/unit/test_io.c: a CA and a server
# certificate for "mx.test" (SAN mx.test, *.mx.test), ECDSA P-256, valid
# from 2000 to 2125 so that neither a slow CI clock nor time makes the
# committed files invalid. Not secret: test use only.
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
