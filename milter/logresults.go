package milter

import (
	"encoding/json"
	"log/slog"
	"strings"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/authres"
	"github.com/mailsidecar/sidecar/dmarc"
)

// The authentication fields of the transaction line. Their names are
// stable: the README documents them, and reports and metrics read them.
//
//	message_id        the Message-ID field, without angle brackets
//	from_domain       the Author Domain (RFC 5322 From)
//	spf.result        spf.domain  spf.identity (mailfrom or helo)
//	dkim              every signature: d, s, result (text: "d:s:result" …)
//	dmarc.result      dmarc.policy  dmarc.disposition  dmarc.policy_domain
//	dmarc.align_spf   dmarc.align_dkim  dmarc.override (arc, when applied)
//	arc.state         arc.oldest_pass  arc.sealers (ARC-Seal d=, oldest first)
//
// A check that was not made for the message has no field.

// maxLoggedID bounds the Message-ID in the log.
const maxLoggedID = 200

// resultAttrs returns the authentication fields of the message in t.
func resultAttrs(t *acl.Txn) []slog.Attr {
	attrs := make([]slog.Attr, 0, 7)
	m := t.Results
	if ids := t.Header("Message-ID"); len(ids) > 0 {
		// Folding and other controls become '?' in clipLog; a Message-ID
		// has no business holding any.
		if id := strings.Trim(strings.TrimSpace(ids[0]), "<>"); id != "" {
			attrs = append(attrs, slog.String("message_id", clipLog(id, maxLoggedID)))
		}
	}
	from := m.From.Domain
	if !m.From.Known && len(t.Headers) > 0 {
		from, _ = dmarc.FromDomain(t.Header("From"))
	}
	if from != "" {
		attrs = append(attrs, slog.String("from_domain", from))
	}
	if e := m.SPF; e != nil {
		attrs = append(attrs, slog.Attr{Key: "spf", Value: slog.GroupValue(
			slog.String("result", string(e.Outcome.Result)),
			slog.String("domain", e.Outcome.Domain),
			slog.String("identity", string(e.Outcome.Identity)))})
	}
	if m.DKIM.Examined {
		sigs := make(dkimLog, 0, len(m.DKIM.Results))
		for _, r := range m.DKIM.Results {
			sigs = append(sigs, dkimSig{D: r.Domain, S: r.Selector, Result: string(r.Status)})
		}
		attrs = append(attrs, slog.Any("dkim", sigs))
	}
	if d := m.DMARC; d != nil && d.Outcome.Result != "" {
		o := &d.Outcome
		g := []slog.Attr{
			slog.String("result", string(o.Result)),
			slog.String("policy", string(o.Policy)),
			slog.String("disposition", string(o.Disposition)),
			slog.String("policy_domain", o.PolicyDomain),
			slog.String("align_spf", yesNo(o.AlignSPF)),
			slog.String("align_dkim", yesNo(o.AlignDKIM)),
		}
		if d.Override != nil {
			g = append(g, slog.String("override", "arc"))
		}
		attrs = append(attrs, slog.Attr{Key: "dmarc", Value: slog.GroupValue(g...)})
	}
	if c := m.ARC.Chain; c != nil {
		attrs = append(attrs, slog.Attr{Key: "arc", Value: slog.GroupValue(
			slog.String("state", c.StateWord()),
			slog.Int("oldest_pass", c.OldestPass),
			slog.String("sealers", c.DomainList()))})
	}
	return attrs
}

// dkimSig is one DKIM signature in the log.
type dkimSig struct {
	D      string `json:"d"`
	S      string `json:"s"`
	Result string `json:"result"`
}

// dkimLog is the dkim field: a JSON array of objects, or in text
// "d:s:result" per signature, separated by spaces ("none" without any).
type dkimLog []dkimSig

// MarshalText writes the text form.
func (l dkimLog) MarshalText() ([]byte, error) {
	if len(l) == 0 {
		return []byte("none"), nil
	}
	var b []byte
	for i, s := range l {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, s.D+":"+s.S+":"+s.Result...)
	}
	return b, nil
}

// MarshalJSON writes the JSON form.
func (l dkimLog) MarshalJSON() ([]byte, error) { return json.Marshal([]dkimSig(l)) }

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// clipLog makes text from a message fit for a log field: printable ASCII,
// at most n bytes.
func clipLog(s string, n int) string {
	s = authres.ReasonText(s)
	if len(s) > n {
		s = s[:n]
	}
	return s
}
