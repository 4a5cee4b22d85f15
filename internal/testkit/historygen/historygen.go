// Package historygen writes synthetic DMARC history files for tests and
// benchmarks: many messages from many policy domains, with the record
// layout the daemon writes (report.HistoryRecord.AppendFormat).
package historygen

import (
	"bufio"
	"fmt"
	"io"
	"time"

	"github.com/mailsidecar/sidecar/report"
)

// Spec says what to write.
type Spec struct {
	Records   int       // messages
	Domains   int       // policy domains (d0.example … dN.example)
	Sources   int       // client addresses per domain (at least 1)
	Start     time.Time // first arrival; one message every Step
	Step      time.Duration
	Reporter  string
	JobPrefix string
}

// Record returns message i of the spec: domain i%Domains, source
// (i/Domains)%Sources; every third message fails DMARC (rejected), the
// others pass by aligned DKIM and SPF.
func (s Spec) Record(i int) *report.HistoryRecord {
	dom := fmt.Sprintf("d%d.example", i%max(s.Domains, 1))
	src := (i / max(s.Domains, 1)) % max(s.Sources, 1)
	r := &report.HistoryRecord{
		JobID: fmt.Sprintf("%s%08X", s.JobPrefix, i), Reporter: s.Reporter,
		Received: s.Start.Add(time.Duration(i) * s.Step),
		IPAddr:   fmt.Sprintf("192.0.%d.%d", 2+src/250, 1+src%250),
		From:     dom, MailFrom: dom, PolicyDomain: dom,
		RUA: []string{"mailto:dmarc@" + dom}, Pct: 100, ADKIM: 'r', ASPF: 'r', P: 'r',
		ARC: report.ARESFail, ARCPolicy: 2,
	}
	if i%3 == 2 {
		r.SPF, r.Policy, r.Action = report.ARESFail, report.HistoryPolicyReject, report.HistoryActionReject
		r.AlignDKIM, r.AlignSPF = report.HistoryAlignFail, report.HistoryAlignFail
		r.IPAddr = fmt.Sprintf("203.0.113.%d", 1+src%250)
	} else {
		r.SPF, r.Policy, r.Action = report.ARESPass, report.HistoryPolicyPass, report.HistoryActionAccept
		r.AlignDKIM, r.AlignSPF = report.HistoryAlignPass, report.HistoryAlignPass
		r.DKIM = []report.HistoryDKIM{{Domain: dom, Selector: "s1", Result: report.ARESPass}}
	}
	return r
}

// Write writes the spec's records to w.
func (s Spec) Write(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	var b []byte
	for i := 0; i < s.Records; i++ {
		b = s.Record(i).AppendFormat(b[:0])
		if _, err := bw.Write(b); err != nil {
			return err
		}
	}
	return bw.Flush()
}
