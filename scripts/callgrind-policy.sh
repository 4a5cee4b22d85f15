#!/bin/sh
# Instructions the policy server executes per cached socketmap answer,
# which the host's load does not move:
#   scripts/callgrind-policy.sh [TESTBINARY] [CONNS] [N1] [N2]
# runs the tlspolicy test binary's TestLoadServer under callgrind twice,
# answering N1 and then N2 requests (default 20000 and 40000) over CONNS
# connections (default 1) from a client process (TestLoadClient) that
# valgrind does not follow, and prints (I(N2) - I(N1)) / (N2 - N1): the
# set-up cancels out. The server runs with GOMAXPROCS=1: with more, idle
# threads spinning for work make the counts vary from run to run.
# TESTBINARY defaults to one built from ./tlspolicy.
set -eu
bin=${1:-}
conns=${2:-1}
n1=${3:-20000}
n2=${4:-40000}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
if [ -z "$bin" ]; then
	bin=$dir/tlspolicy.test
	${GO:-go} test -c -o "$bin" ./tlspolicy
fi
count() { # N: instructions of a server that answered N requests
	rm -f "$dir/addr"
	mkfifo "$dir/in.$1"
	GOMAXPROCS=1 GODEBUG=asyncpreemptoff=1 SIDECAR_TEST_LOAD_SERVE=$dir/addr \
		valgrind --tool=callgrind --callgrind-out-file="$dir/cg.$1" \
		"$bin" -test.run '^TestLoadServer$' <"$dir/in.$1" >"$dir/server.$1.log" 2>&1 &
	exec 3>"$dir/in.$1"
	while [ ! -s "$dir/addr" ]; do sleep 0.2; done
	spec=$(printf '{"Addr":"%s","Conns":%s,"N":%s,"Pairs":[{"Req":"policy dane.example.com","Want":"OK dane-only"}]}' "$(cat "$dir/addr")" "$conns" "$1")
	echo go | SIDECAR_TEST_LOAD_SPEC=$spec "$bin" -test.run '^TestLoadClient$' -test.v | grep '^LOAD {' >&2
	exec 3>&-
	wait
	callgrind_annotate "$dir/cg.$1" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }'
}
i1=$(count "$n1")
i2=$(count "$n2")
echo "conns=$conns: $i1 instructions for $n1 requests, $i2 for $n2: $(( (i2 - i1) / (n2 - n1) )) per request"
