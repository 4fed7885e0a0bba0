#!/usr/bin/env bash
# test/make_certs.sh DIR -- makes a throwaway certificate authority and the
# certificates the TLS tests, the TLS benchmark and the sandbox use, in DIR:
#   ca.crt                    the CA that signs the others
#   other-ca.crt              an unrelated CA (a wrong tls_ca_file)
#   server.crt, server.key    for the names localhost and 127.0.0.1
#   other.crt, other.key      signed by ca.crt, for another host name only
#   stranger.crt, stranger.key  for localhost and 127.0.0.1, signed by
#                             other-ca.crt (a server the right CA does not
#                             vouch for)
#   client.crt, client.key    a client certificate (tls-auth-clients yes)
# Keys are P-256 EC keys, unencrypted, mode 0600; everything is valid for
# a few days.
set -eu
dir=$1
mkdir -p "$dir"
cd "$dir"

newkey=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)

for ca in ca other-ca; do
    openssl req -x509 "${newkey[@]}" -keyout "$ca.key" -out "$ca.crt" -days 5 \
        -subj "/CN=cachebridge test $ca" 2>/dev/null
done

# issue NAME CN EXTENSIONS [CA]: NAME.crt and NAME.key, signed by CA.crt
# (by default ca.crt)
issue() {
    local ca=${4:-ca}
    openssl req "${newkey[@]}" -keyout "$1.key" -out "$1.csr" -subj "/CN=$2" 2>/dev/null
    printf '%s\n' "$3" >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA "$ca.crt" -CAkey "$ca.key" -CAcreateserial -days 5 \
        -out "$1.crt" -extfile "$1.ext" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}
issue server localhost "subjectAltName=DNS:localhost,IP:127.0.0.1"
issue other other.example "subjectAltName=DNS:other.example"
issue stranger localhost "subjectAltName=DNS:localhost,IP:127.0.0.1" other-ca
issue client cachebridge "extendedKeyUsage=clientAuth"
chmod 600 ./*.key
