#!/bin/sh
# Measures the milter the way the README reports it: sidecar runs as its own
# process on the embedded default rules (SPF, DMARC, Authentication-Results)
# with its DNS pointed at sidecar-load's fake zone, and sidecar-load drives
# it over loopback TCP with 10 KB messages. Prints, per scenario, the
# generator's figures (messages/s, latency percentiles) and sidecar's CPU
# time per message and resident memory.
#
#   scripts/load.sh [seconds per scenario, default 10]
#
# Scenarios: one milter connection per message (a new SMTP session each
# time) and 20 connections carrying messages back to back, each as fast as
# possible and at a fixed 1,500 messages/s; then 1,000 sessions held open
# idle, then used; then a DKIM-signed corpus. Last, the harness's baseline: the generator against
# `sidecar-load -null-milter`, a milter that checks nothing and answers only
# the end of each message. Ports 18894/18895 (milter, policy), 18896 (null
# milter) and 15399 (fake DNS) on 127.0.0.1 must be free.
set -e
secs=${1:-10}
dir=$(mktemp -d)
pid=
trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
go build -o "$dir/sidecar" ./cmd/sidecar
go build -o "$dir/sidecar-load" ./cmd/sidecar-load
# The embedded default configuration with other ports and the fake DNS.
"$dir/sidecar" help default |
	sed -e 's|^milter_listen = .*|milter_listen = inet:127.0.0.1:18894|' \
		-e 's|^policy_listen = .*|policy_listen = inet:127.0.0.1:18895|' \
		-e 's|^dns_timeout = .*|dns_servers = 127.0.0.1:15399\ndns_timeout = 2s|' >"$dir/sidecar.conf"
"$dir/sidecar" check-config "$dir/sidecar.conf" >/dev/null

run() {
	name=$1
	shift
	"$dir/sidecar" -config "$dir/sidecar.conf" 2>"$dir/sidecar.log" &
	pid=$!
	sleep 0.5
	echo "== $name"
	"$dir/sidecar-load" -addr inet:127.0.0.1:18894 -dns 127.0.0.1:15399 -pid $pid "$@" |
		grep -E '^(connections|messages|errors|dkim_pass|throughput|latency_p50|latency_p99|rss_idle|rss_max|cpu):'
	kill $pid
	wait $pid 2>/dev/null || true
}

run "one connection per message, as fast as possible" -c 20 -d ${secs}s -per-conn 1
run "20 connections, messages back to back, as fast as possible" -c 20 -d ${secs}s -per-conn 0
run "one connection per message, 1,500 msg/s offered" -c 20 -d ${secs}s -per-conn 1 -rate 1500
run "20 connections, 1,500 msg/s offered" -c 20 -d ${secs}s -per-conn 0 -rate 1500
run "1,000 sessions open 5 s idle, then 20,000 messages" -c 1000 -idle 5s -per-conn 10 -n 20000
run "DKIM-signed corpus (RSA-2048, relaxed), 20 connections, as fast as possible" -c 20 -d ${secs}s -per-conn 0 -dkim

null() {
	name=$1
	shift
	"$dir/sidecar-load" -null-milter inet:127.0.0.1:18896 >/dev/null &
	pid=$!
	sleep 0.3
	echo "== baseline, null milter: $name"
	"$dir/sidecar-load" -addr inet:127.0.0.1:18896 -warmup 0 "$@" |
		grep -E '^(connections|messages|errors|throughput|latency_p50|latency_p99):'
	kill $pid
	wait $pid 2>/dev/null || true
}

null "one connection per message, as fast as possible" -c 20 -d ${secs}s -per-conn 1
null "one connection per message, 1,500 msg/s offered" -c 20 -d ${secs}s -per-conn 1 -rate 1500
null "20 connections, messages back to back, as fast as possible" -c 20 -d ${secs}s -per-conn 0
null "20 connections, 1,500 msg/s offered" -c 20 -d ${secs}s -per-conn 0 -rate 1500
