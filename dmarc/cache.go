package dmarc

import "github.com/mailsidecar/sidecar/internal/parsecache"

// parsedRecords parses each DMARC record text once per process (while it
// stays among the MaxParsedRecords last used): evaluations share the
// *Record, read-only from then on (Record.usable copies before it changes
// anything, and Outcome.Record says so to callers).
var parsedRecords = parsecache.New(MaxParsedRecords, maxCachedRecord, ParseRecord)

// MaxParsedRecords bounds the parsed-record cache.
const MaxParsedRecords = 4096

// maxCachedRecord is the longest record text cached.
const maxCachedRecord = 2048

// parseRecordCached is ParseRecord through the process-wide cache of
// parsed records. The *Record it returns is shared: never modify it.
func parseRecordCached(txt string) (*Record, error) { return parsedRecords.Parse(txt) }
