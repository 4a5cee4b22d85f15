package spf

import "github.com/mailsidecar/sidecar/internal/parsecache"

// parsedRecords parses each SPF record text once per process (while it
// stays among the MaxParsedRecords last used), syntax errors included:
// evaluations share the *Record, which evaluation only reads.
var parsedRecords = parsecache.New(MaxParsedRecords, maxCachedRecord, ParseRecord)

// MaxParsedRecords bounds the parsed-record cache.
const MaxParsedRecords = 4096

// maxCachedRecord is the longest record text cached.
const maxCachedRecord = 2048

// parseRecordCached is ParseRecord through the process-wide cache of
// parsed records. The *Record it returns is shared: never modify it.
func parseRecordCached(txt string) (*Record, error) { return parsedRecords.Parse(txt) }
