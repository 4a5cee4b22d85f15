// Package store keeps DMARC history records for reports: an embedded
// SQLite file (modernc.org/sqlite, pure Go) on one host, or a PostgreSQL
// database (github.com/jackc/pgx/v5) that several hosts import into.
//
// A message is one row of "messages", keyed on (received, reporter,
// jobid) as OpenDMARC's schema keys it (UNIQUE (reporter, date, jobid)): importing a file twice, a file and its
// rotated copy, or the same file from several importers at once adds each
// record once. "deliveries" records what each aggregate report became at
// each rua destination (RFC 9990 section 4), so that a report is sent
// once and a temporary failure is tried again.
package store
