#!/bin/sh
# Interleaved A/B of the inbound benchmark without and with metrics:
#   scripts/bench-metrics.sh [ROUNDS] [BENCHTIME]
# builds the checks test binary once, then runs BenchmarkInboundAuth and
# BenchmarkInboundAuthMetrics alternately ROUNDS times (default 6), so that
# both see the same host load; prints each run's line.
set -eu
rounds=${1:-6}
benchtime=${2:-2s}
bin=$(mktemp -d)/checks.test
${GO:-go} test -c -o "$bin" ./checks
cd checks
i=0
while [ "$i" -lt "$rounds" ]; do
	for b in 'InboundAuth$' 'InboundAuthMetrics$'; do
		"$bin" -test.run '^$' -test.bench "$b" -test.benchtime "$benchtime" -test.benchmem | grep '^Benchmark'
	done
	i=$((i + 1))
done
rm -rf "$(dirname "$bin")"
