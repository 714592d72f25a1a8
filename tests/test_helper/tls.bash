# TLS test helpers: the Python client of test_helper/tlsdrive.py, the
# throwaway PKI and the set-up the TLS files share.  Load after
# test_helper/common.

export PYTHONPATH=$ROOT/tests/test_helper

# drive ARG... <<'EOF' python EOF: runs the Python script on stdin with
# ARGs as sys.argv[1:], "from tlsdrive import *" already done, under a
# hard time limit.
drive() {
	local body
	body=$(cat)
	timeout -k 5 60 python3 -c "import sys
from tlsdrive import *
$body" "$@"
}

# The server over pipes, as `drive` scripts start it: sys.argv[1:].
SERVER=(timeout -k 5 60)

# tls_setup NAME: for a test of a file whose setup_file made its PKI in
# $BATS_FILE_TMPDIR/pki: PKI (exported, for drive scripts), TLS, the
# server options for the certificate NAME.pem and its key NAME.key there,
# and LOG (exported), a log file of this test's own.
tls_setup() {
	PKI=$BATS_FILE_TMPDIR/pki
	TLS=(--tls-cert "$PKI/$1.pem" --tls-key "$PKI/$1.key")
	export PKI
	export LOG=$BATS_TEST_TMPDIR/log
}

# pki_key TYPE: the openssl req options for a new key of TYPE, rsa (2048
# bits) or ec (P-256), in the array NEWKEY.
pki_key() {
	case $1 in
	rsa) NEWKEY=(-newkey rsa:2048) ;;
	ec) NEWKEY=(-newkey ec -pkeyopt ec_paramgen_curve:P-256) ;;
	*) fail "pki_key: no key type $1" ;;
	esac
}

# pki_self_signed DIR TYPE NAME CN [SAN]: DIR/NAME.pem, a self-signed
# certificate for /CN=CN valid two days, with subjectAltName SAN if given
# (e.g. DNS:mx.example.test), its TYPE key in DIR/NAME.key.
pki_self_signed() {
	local d=$1 name=$3 cn=$4 san=${5-}
	pki_key "$2"
	openssl req -x509 "${NEWKEY[@]}" -nodes -days 2 -subj "/CN=$cn" \
	    ${san:+-addext "subjectAltName=$san"} \
	    -keyout "$d/$name.key" -out "$d/$name.pem" 2>/dev/null
}

# pki_signed DIR TYPE NAME CN SAN: DIR/NAME.pem for /CN=CN and
# subjectAltName SAN, valid two days, signed by the CA DIR/ca.pem (made
# with pki_self_signed DIR TYPE ca ...), its TYPE key in DIR/NAME.key.
pki_signed() {
	local d=$1 name=$3
	pki_key "$2"
	openssl req "${NEWKEY[@]}" -nodes -subj "/CN=$4" \
	    -keyout "$d/$name.key" -out "$d/$name.csr" 2>/dev/null
	printf 'subjectAltName=%s\n' "$5" >"$d/$name.ext"
	openssl x509 -req -in "$d/$name.csr" -CA "$d/ca.pem" \
	    -CAkey "$d/ca.key" -CAcreateserial -days 2 \
	    -extfile "$d/$name.ext" -out "$d/$name.pem" 2>/dev/null
}
