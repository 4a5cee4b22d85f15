#!/usr/bin/env bash
# Build keys, zones, signatures and configs for the hermetic DNSSEC test bed.
# Needs: ldnsutils (ldns-keygen, ldns-signzone, ldns-key2ds), knot or nsd, unbound, openssl.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

rm -rf "$RUN"
mkdir -p "$RUN/zones" "$RUN/keys" "$RUN/tls" "$RUN/knot-db"

# 1. A TLS key/certificate for mail.example.test and its DANE-EE SPKI SHA-256 (TLSA 3 1 1).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=mail.example.test" -addext "subjectAltName=DNS:mail.example.test" \
    -keyout "$RUN/tls/key.pem" -out "$RUN/tls/cert.pem" 2>/dev/null
TLSA_SHA256=$(openssl x509 -in "$RUN/tls/cert.pem" -noout -pubkey \
    | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1)

# 2. DNSSEC keys (ECDSA P-256, alg 13). One KSK-flagged key per zone acts as a CSK.
cd "$RUN/keys"
K_PARENT=$(ldns-keygen -a ECDSAP256SHA256 -k example.test)
K_BOGUS=$(ldns-keygen -a ECDSAP256SHA256 -k bogus.example.test)
K_WRONG=$(ldns-keygen -a ECDSAP256SHA256 -k bogus.example.test)   # never used for signing
BOGUS_DS=$(ldns-key2ds -n -2 "$K_WRONG.key")                        # DS that matches nothing
ldns-key2ds -n -2 "$K_PARENT.key" > "$RUN/example.test.ds"          # unbound trust anchor
cd "$TB"

# 3. Render zone files.
render() { sed -e "s|@TLSA_SHA256@|$TLSA_SHA256|g" -e "s|@BOGUS_DS@|$BOGUS_DS|g" "$1"; }
for z in example.test bogus.example.test insecure.example.test; do
    render "zones/$z.zone.in" > "$RUN/zones/$z.zone"
done

# 4. Sign (NSEC by default; SIGN_OPTS="-n" for NSEC3). Signatures valid from now for 4 weeks (ldns default).
SIGN_OPTS="${SIGN_OPTS:-}"
ldns-signzone $SIGN_OPTS -o example.test -f "$RUN/zones/example.test.zone.signed" \
    "$RUN/zones/example.test.zone" "$RUN/keys/$K_PARENT"
ldns-signzone $SIGN_OPTS -o bogus.example.test -f "$RUN/zones/bogus.example.test.zone.signed" \
    "$RUN/zones/bogus.example.test.zone" "$RUN/keys/$K_BOGUS"

# 5. Tamper with one signature: flip one base64 character of the RRSIG over tampered.example.test/A.
f="$RUN/zones/example.test.zone.signed"
awk 'BEGIN{OFS="\t"}
     $1=="tampered.example.test." && $4=="RRSIG" && $5=="A" {
        s=$NF; c=substr(s,20,1); r=(c=="A")?"B":"A"; $NF=substr(s,1,19) r substr(s,21); done=1 }
     {print}
     END{ if(!done){ print "no RRSIG for tampered.example.test found" > "/dev/stderr"; exit 1 } }' \
    "$f" > "$f.tmp" && mv "$f.tmp" "$f"

# 6. Render server configs.
for t in knot unbound; do
    sed -e "s|@RUN@|$RUN|g" -e "s|@AUTH_ADDR@|$AUTH_ADDR|g" -e "s|@AUTH_PORT@|$AUTH_PORT|g" \
        -e "s|@RES_ADDR@|$RES_ADDR|g" -e "s|@RES_PORT@|$RES_PORT|g" \
        -e "s|@DEAD_PORT@|$DEAD_PORT|g" -e "s|@SLOW_PORT@|$SLOW_PORT|g" \
        "templates/$t.conf.in" > "$RUN/$t.conf"
done
unbound-checkconf "$RUN/unbound.conf"
if command -v knotc >/dev/null; then knotc -c "$RUN/knot.conf" conf-check; fi

echo "TLSA 3 1 1 for mail.example.test: $TLSA_SHA256"
echo "trust anchor: $(cat "$RUN/example.test.ds")"
echo "setup done in $RUN"
