// Package report is sidecar's reporting wing, off the message path: the
// DMARC history file in OpenDMARC 1.4's format (the input of
// opendmarc-import, and of sidecar's own aggregate reports), written once
// per message at its end with what was done with it.
//
// It reads the per-message results (package results) and the DMARC
// evaluation; it imports neither the milter nor the ACLs.
package report
