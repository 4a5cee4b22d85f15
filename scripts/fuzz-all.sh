#!/bin/sh
# Runs every native Go fuzz target of the project for $1 each (default
# 30s), whatever the others do, and reports each one:
#
#   pass   the target ran for the whole time
#   crash  it found an input that fails (written to testdata/fuzz/...),
#          or an input of its seed corpus fails
#   flaky  the fuzzing engine stopped without an input to show for it
#          (Go 1.26 sometimes reports "context deadline exceeded" at the
#          end of -fuzztime, with no crasher); it is not a finding
#   error  the package did not build, or the engine failed otherwise
#
# $2, when given, selects packages (a go list pattern, default ./...).
# The exit status is 1 when a target crashed, 2 when one could not run
# (and none crashed), 0 otherwise: flaky targets do not fail the sweep.
# Each target's output is kept in $FUZZ_LOGDIR (default: a temporary
# directory, named in the summary).
t=${1:-30s}
pattern=${2:-./...}
logdir=${FUZZ_LOGDIR:-$(mktemp -d "${TMPDIR:-/tmp}/fuzz-all.XXXXXX")}
mkdir -p "$logdir" || exit 2
summary="$logdir/summary"
: >"$summary"
crashes=0
errors=0
flaky=0
total=0

for pkg in $(go list "$pattern"); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
		total=$((total + 1))
		log="$logdir/$(echo "$pkg" | tr '/' '_')_$f.log"
		echo "== $pkg $f ($t)"
		if go test -run '^$' -fuzz "^$f\$" -fuzztime "$t" "$pkg" >"$log" 2>&1; then
			status=pass
			reason=$(grep -o 'elapsed: [^,]*, execs: [0-9]*' "$log" | tail -n 1)
		elif input=$(grep -o 'Failing input written to [^ ]*' "$log" | head -n 1) && [ -n "$input" ]; then
			status=crash
			reason=${input#Failing input written to }
			crashes=$((crashes + 1))
		elif seed=$(grep -o 'failure while testing seed corpus entry: .*' "$log" | head -n 1) && [ -n "$seed" ]; then
			status=crash
			reason="an input of the seed corpus fails: ${seed#failure while testing seed corpus entry: }"
			crashes=$((crashes + 1))
		elif grep -q -e '\[build failed\]' -e '\[setup failed\]' "$log"; then
			status=error
			reason="the package did not build"
			errors=$((errors + 1))
		elif grep -q 'context deadline exceeded' "$log"; then
			status=flaky
			reason="the engine reported \"context deadline exceeded\" and wrote no failing input (Go fuzzing bug)"
			flaky=$((flaky + 1))
		else
			status=error
			reason="failed without a failing input: $(grep -m 1 -v -e '^ok' -e '^FAIL' -e '^fuzz: elapsed' "$log" | cut -c1-160)"
			errors=$((errors + 1))
		fi
		echo "   $status${reason:+: $reason}"
		printf '%-6s %-50s %s\n' "$status" "$pkg $f" "$reason" >>"$summary"
	done
done

echo
echo "== summary: $total targets, $crashes crashed, $flaky flaky, $errors could not run (logs in $logdir)"
sort "$summary"
if [ "$crashes" -gt 0 ]; then
	exit 1
fi
if [ "$errors" -gt 0 ]; then
	exit 2
fi
exit 0
