# TLS test helpers for 83-tls and 84-auth: the Python client of
# test_helper/tlsdrive.py.  Load after test_helper/common.

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
