package tlsrpt

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"mime"
	"time"
)

// Mail is the report as a message for a mailto: rua (RFC 8460 §5.3): a
// multipart/report of report-type tlsrpt with a short text part and the
// gzip'd report as an application/tlsrpt+gzip attachment named
// FileName, the TLS-Report-Domain and TLS-Report-Submitter header fields
// and the subject "Report Domain: … Submitter: … Report-ID: <…>". from is
// the From address, to the rua address, date the Date field. The local
// MTA signs it with DKIM when its milter (sidecar with dkim_sign) does so
// for local mail, as §5.3 asks.
func (r *Report) Mail(from, to string, date time.Time) ([]byte, error) {
	gz, err := r.Gzip()
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(gz)
	boundary := "tlsrpt-" + hex.EncodeToString(sum[:12])
	domain, submitter := r.PolicyDomain(), r.Sender
	var b bytes.Buffer
	h := func(format string, a ...any) { fmt.Fprintf(&b, format+"\r\n", a...) }
	h("From: %s", from)
	h("To: %s", to)
	h("Date: %s", date.Format(time.RFC1123Z))
	h("Subject: Report Domain: %s\r\n Submitter: %s\r\n Report-ID: <%s>", domain, submitter, r.ReportID)
	h("Message-ID: <%s.%s>", hex.EncodeToString(sum[:8]), r.ReportID)
	h("TLS-Report-Domain: %s", domain)
	h("TLS-Report-Submitter: %s", submitter)
	h("MIME-Version: 1.0")
	h("Content-Type: %s", mime.FormatMediaType("multipart/report", map[string]string{"report-type": "tlsrpt", "boundary": boundary}))
	h("")
	h("This is a multipart message in MIME format.")
	h("")
	h("--%s", boundary)
	h("Content-Type: text/plain; charset=us-ascii")
	h("Content-Transfer-Encoding: 7bit")
	h("")
	h("This is an aggregate TLS report (RFC 8460) from %s", submitter)
	h("for %s, %s to %s.", domain, r.DateRange.Start.UTC().Format(time.RFC3339), r.DateRange.End.UTC().Format(time.RFC3339))
	h("")
	h("--%s", boundary)
	h("Content-Type: %s", MediaType)
	h("Content-Transfer-Encoding: base64")
	h("Content-Disposition: %s", mime.FormatMediaType("attachment", map[string]string{"filename": r.FileName()}))
	h("")
	enc := base64.StdEncoding.EncodeToString(gz)
	for len(enc) > 76 {
		h("%s", enc[:76])
		enc = enc[76:]
	}
	h("%s", enc)
	h("--%s--", boundary)
	return b.Bytes(), nil
}
