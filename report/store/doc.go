// Package store keeps DMARC history records for reports: an embedded
// SQLite file (modernc.org/sqlite, pure Go) on one host, or a PostgreSQL
// database (github.com/jackc/pgx/v5) that several hosts import into.
//
// A message is one narrow row of "messages", keyed on (received,
// reporter, jobid) as OpenDMARC's schema keys it (UNIQUE (reporter,
// date, jobid)): importing a file twice, a file and its rotated copy, or
// the same file from several importers at once adds each record once.
// The row names its group in "report_groups": the fields an RFC 9990
// aggregate report counts together (source, disposition, results,
// identifiers, policy published), stored once per distinct group.
// "group_days" is the rollup — per UTC day and group, the number of
// messages and the latest arrival — which each import transaction
// updates with the messages it actually inserted, so that the reports of
// a day read one row per group instead of every message. "deliveries"
// records what each aggregate report became at each rua destination
// (RFC 9990 section 4), so that a report is sent once and a temporary
// failure is tried again.
package store
