// Package metrics is sidecar's Prometheus exposition: the counters and
// histograms of the message path, the policy socket and the DNS, read
// through the small observer interfaces of stage, resolver and tlspolicy
// (stage.Observer, resolver.Observer, tlspolicy.Observer), so that those
// packages import nothing of Prometheus; and the HTTP endpoint of
// metrics_listen with /metrics, /healthz and /readyz.
//
// Every label has a bounded set of values: result tokens, verdicts,
// stages, DNS types and rcodes, policy levels. No label carries a
// domain, an address or anything else a client chooses; a value outside
// a label's set is counted as "other".
//
// Observing is lock-free on the message path: the counters for every
// label value are made in New, and an observation is an atomic add.
package metrics
