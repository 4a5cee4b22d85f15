package checks

// The DMARC history file (dmarc_history_file): one OpenDMARC 1.4 record
// per message DMARC evaluated, for opendmarc-import.
//
// A compiled Program only knows the file's path. The daemon attaches the
// file to each Program it runs (AttachHistory, from daemon.Build, at start
// and on every reload); the file is opened when the first record is
// written, so that commands that compile a configuration (check-config,
// spf, check) never create it, with the wrong owner, as a side effect.
// Programs with the same path share one open file, which AttachHistory
// reopens: that is the SIGHUP rotation. dmarc.HistoryFile writes each
// record in one write(2) on an O_APPEND descriptor and follows a renamed
// file by itself.

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/arc"
	"github.com/mailsidecar/sidecar/dmarc"
	"github.com/mailsidecar/sidecar/results"
)

// historyRef is the history file a Program writes to; nil when detached.
type historyRef = atomic.Pointer[historySink]

// historySink is the history file at one path, opened at first use.
type historySink struct {
	path string
	mu   sync.Mutex
	f    *dmarc.HistoryFile
}

var sinks = struct {
	sync.Mutex
	m map[string]*historySink
}{m: map[string]*historySink{}}

func sinkFor(path string) *historySink {
	sinks.Lock()
	defer sinks.Unlock()
	s := sinks.m[path]
	if s == nil {
		s = &historySink{path: path}
		sinks.m[path] = s
	}
	return s
}

func (s *historySink) file() (*dmarc.HistoryFile, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		f, err := dmarc.OpenHistoryFile(s.path)
		if err != nil {
			return nil, err
		}
		s.f = f
	}
	return s.f, nil
}

func (s *historySink) append(r *dmarc.HistoryRecord) error {
	f, err := s.file()
	if err != nil {
		return err
	}
	return f.Append(r)
}

// reopen reopens the file if it is open (log rotation).
func (s *historySink) reopen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	return s.f.Reopen()
}

// AttachHistory makes prog write the history records of its messages to
// its dmarc_history_file, if it has one. The daemon calls it for every
// Program it builds; a file already open for the same path is reopened
// (SIGHUP after rotation). The file itself is opened at the first record.
func AttachHistory(prog *acl.Program) error {
	s, ok := prog.Feature(dmarcFeature).(*dmarcSettings)
	if !ok || s.HistoryPath == "" {
		return nil
	}
	sink := sinkFor(s.HistoryPath)
	s.hist.Store(sink)
	return sink.reopen()
}

// DetachHistory stops prog from writing history records (the check
// command evaluates messages without recording them).
func DetachHistory(prog *acl.Program) {
	if s, ok := prog.Feature(dmarcFeature).(*dmarcSettings); ok {
		s.hist.Store(nil)
	}
}

// HistoryPath returns the history file prog writes to, or "" when it
// writes none.
func HistoryPath(prog *acl.Program) string {
	if s, ok := prog.Feature(dmarcFeature).(*dmarcSettings); ok {
		if sink := s.hist.Load(); sink != nil {
			return sink.path
		}
	}
	return ""
}

// historyRecord builds the record of an evaluation. The record is
// written before the DATA ACL decides, so the action is what the policy
// asks for when the configuration acts on it (Exim's choice): reject when
// its ACLs deny on DMARC, quarantine when they quarantine on DMARC; and
// otherwise accept, or quarantine for a message already held by control =
// quarantine.
func historyRecord(t *acl.Txn, e *results.DMARC, s *dmarcSettings) *dmarc.HistoryRecord {
	o := e.Outcome
	if o.Action == "" {
		switch {
		case o.Status == dmarc.StatusReject && s.rejects:
			o.Action = dmarc.PolicyReject
		case o.Status == dmarc.StatusQuarantine && s.quarantines:
			o.Action = dmarc.PolicyQuarantine
		}
	}
	r := dmarc.NewHistoryRecord(e.Input, o)
	r.JobID = t.QueueID
	r.Reporter = t.Services.PrimaryHostname
	if t.Services.Now != nil {
		r.Received = t.Services.Now()
	} else {
		r.Received = time.Now()
	}
	if t.Conn.ClientIP.IsValid() {
		r.IPAddr = t.Conn.ClientIP.Unmap().String()
	}
	r.MailFrom = t.SenderDomain()
	// ARC, as OpenDMARC writes it: arc 0 when the chain passes, else 7
	// (fail); the seals of the chain, oldest first.
	if c, err := ARCChain(t); err == nil && c != nil {
		if c.State == arc.Pass && !c.Temp {
			r.ARC = dmarc.ARESPass
		}
		for _, in := range c.Instances {
			if in.ASDomain != "" {
				r.ARCSeals = append(r.ARCSeals, dmarc.ARCSeal{Instance: in.I, Domain: in.ASDomain, Selector: in.ASSelector})
			}
		}
	}
	return r
}

// writeHistory appends the record of an evaluation when the Program has
// a history file attached.
func writeHistory(t *acl.Txn, e *results.DMARC) error {
	s := dmarcSettingsOf(t)
	sink := s.hist.Load()
	if sink == nil {
		return nil
	}
	return sink.append(historyRecord(t, e, s))
}
