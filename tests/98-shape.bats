#!/usr/bin/env bats
# The shape of the code (issue 18), checked on every build the suite runs:
# - no import circle among the objects linked into each program: the
#   file-level graph "a.o takes a symbol b.o defines" (nm) has no cycle;
# - pmccabe src/*.c: no function over 60 lines, the median at most 15
#   (each side of an #if ... #else read, as pmccabe alone reads one);
# - a function whose complexity (pmccabe's first column) is over 15 is a
#   flat switch over a table that reads best so, and says so and why in a
#   comment that starts with the marker
#	/* flat switch: ...why... */
#   in its body or in the comment block just above it; it must hold a
#   switch.
# The checks are tests/test_helper/shape.py; each failure lists exactly
# what is wrong.  The tests at the end show that every check can fail.

setup() {
	load test_helper/common
	common_setup
	BUILD=$(cd "$(dirname "$SMTPD")" && pwd)
	SHAPE=$ROOT/tests/test_helper/shape.py
}

# objects VAR: the objects the Makefile's VAR (OBJS, OBJS_TLS,
# WORKER_OBJS, STREAM_OBJS) links, in the build directory of $SMTPD.
# Asks make itself, so a new module or a renamed one is followed.
objects() {
	printf 'shape-print-%%:\n\t@echo $($*)\n' |
		env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS make -s \
		--no-print-directory -C "$ROOT" -f Makefile -f - O="$BUILD" \
		"shape-print-$1"
}

# no_circle PROGRAM VAR: the objects of VAR exist and import no circle.
no_circle() {
	local objs o
	objs=$(objects "$2")
	[ -n "$objs" ] || fail "$2: no objects from the Makefile"
	for o in $objs; do
		[ -f "$o" ] || fail "$1: $o is not built"
	done
	# shellcheck disable=SC2086 # one word per object
	run python3 "$SHAPE" imports "$1" $objs
	assert_output ''
	assert_success
}

@test "smtpd-stdio (conn-notls.o, tls-exec.o) imports no circle" {
	no_circle smtpd-stdio OBJS
}

@test "smtpd-stdio-tls (conn.o, tls.o) imports no circle" {
	no_circle smtpd-stdio-tls OBJS_TLS
}

@test "redis-worker imports no circle" {
	no_circle redis-worker WORKER_OBJS
}

@test "redis-stream imports no circle" {
	no_circle redis-stream STREAM_OBJS
}

@test "pmccabe src/*.c: no function over 60 lines, median at most 15" {
	run python3 "$SHAPE" sizes "$ROOT"/src/*.c
	assert_output ''
	assert_success
}

@test "pmccabe src/*.c: complexity over 15 only in a marked flat switch" {
	run python3 "$SHAPE" complexity "$ROOT"/src/*.c
	assert_output ''
	assert_success
}

# ---- The checks themselves, on small made-up sources ----

# lines_fn NAME N: a C function NAME of N lines in all.
lines_fn() {
	local i
	printf 'int\n%s(int x)\n{\n' "$1"
	for i in $(seq $(($2 - 5))); do printf '\tx += %d;\n' "$i"; done
	printf '\treturn x;\n}\n\n'
}

@test "the import check names a circle and every arrow in it, and passes a tree" {
	cd "$BATS_TEST_TMPDIR"
	printf 'int lo(void);\nint top(void) { return lo(); }\n' >top.c
	printf 'int mid(void);\nint lo(void) { return mid(); }\n' >lo.c
	printf 'int top(void);\nint mid(void) { return top(); }\n' >mid.c
	printf 'int lo(void);\nint leaf(void) { return lo(); }\n' >leaf.c
	for f in top lo mid leaf; do cc -c -o "$f.o" "$f.c"; done
	run python3 "$SHAPE" imports prog leaf.o lo.o mid.o top.o
	assert_failure 1
	assert_output - <<-EOF
	prog: import circle lo.o -> mid.o -> top.o -> lo.o; every arrow among lo.o mid.o top.o:
	  lo.o -> mid.o: mid
	  mid.o -> top.o: top
	  top.o -> lo.o: lo
	EOF
	printf 'int top(void) { return 1; }\n' >mid.c
	cc -c -o mid.o mid.c
	printf 'int mid(void) { return 1; }\n' >top.c
	cc -c -o top.o top.c
	run python3 "$SHAPE" imports prog leaf.o lo.o mid.o top.o
	assert_success
	assert_output ''
}

@test "the size check names a function over 60 lines and a median over 15" {
	cd "$BATS_TEST_TMPDIR"
	{ lines_fn small 15; lines_fn big 61; lines_fn also 16; } >long.c
	run python3 "$SHAPE" sizes long.c
	assert_failure 1
	assert_output - <<-EOF
	long.c:18: big is 61 lines (at most 60)
	median function length 16 lines over 3 functions (at most 15)
	EOF
	{ lines_fn small 15; lines_fn big 60; lines_fn also 15; } >ok.c
	run python3 "$SHAPE" sizes ok.c
	assert_success
	assert_output ''
}

# branchy NAME MARK: a function NAME of complexity 18 (pmccabe counts a
# whole switch as one branch, and each if in it as one more), and MARK (if
# any) as the comment just above it.
branchy() {
	local i
	[ -z "$2" ] || printf '%s\n' "$2"
	printf 'int\n%s(int x, int y)\n{\n\tswitch (x) {\n' "$1"
	for i in $(seq 16); do
		printf '\tcase %d: if (y) return %d; break;\n' "$i" "$i"
	done
	printf '\t}\n\treturn 0;\n}\n\n'
}

@test "the complexity check wants the marker and a switch over 15" {
	local i
	cd "$BATS_TEST_TMPDIR"
	{
		branchy bare ''
		branchy marked '/* flat switch: one case per code of the table. */'
		printf '/* Not marked: a blank line parts the comment. */\n\n'
		branchy parted ''
		printf '/* flat switch: a marker with no switch to show. */\n'
		printf 'int\nifs(int x)\n{\n'
		for i in $(seq 16); do printf '\tif (x == %d)\n\t\treturn 1;\n' "$i"; done
		printf '\treturn 0;\n}\n'
	} >branchy.c
	run pmccabe branchy.c
	assert_line --regexp '^18	33	.*branchy.c\([0-9]+\): marked$'
	assert_line --regexp '^17	17	.*branchy.c\([0-9]+\): ifs$'
	run python3 "$SHAPE" complexity branchy.c
	assert_failure 1
	assert_output - <<-EOF
	branchy.c:2: bare has complexity 18 (at most 15, or a switch marked /* flat switch: why */)
	branchy.c:53: parted has complexity 18 (at most 15, or a switch marked /* flat switch: why */)
	branchy.c:78: ifs has complexity 17 (at most 15, or a switch marked /* flat switch: why */)
	EOF
}

@test "the size check reads both sides of an #ifdef ... #else, at their own line numbers" {
	cd "$BATS_TEST_TMPDIR"
	# pmccabe alone sees only the #ifdef side: the stub.
	{
		printf '#ifdef STUB\n'
		lines_fn half 5
		printf '#else\n'
		lines_fn half 61
		printf '#endif\n'
		lines_fn small 5
	} >sides.c
	run pmccabe sides.c
	assert_output "$(printf '1\t1\t1\t%b\n' '2\t5\tsides.c(3): half' \
	    '72\t5\tsides.c(73): small')"
	run python3 "$SHAPE" sizes sides.c
	assert_failure 1
	assert_output 'sides.c:10: half is 61 lines (at most 60)'
}
