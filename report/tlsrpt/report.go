package tlsrpt

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"time"
)

// MediaType is the media type of a gzip'd report (RFC 8460 §6.4).
const MediaType = "application/tlsrpt+gzip"

// PolicyType is the RFC 8460 §4.3 policy-type.
type PolicyType string

// Policy types.
const (
	PolicyTLSA     PolicyType = "tlsa"            // DANE (RFC 7672)
	PolicySTS      PolicyType = "sts"             // MTA-STS (RFC 8461)
	PolicyNotFound PolicyType = "no-policy-found" // neither
)

// ResultType is the RFC 8460 §4.3 result-type of a failure.
type ResultType string

// Result types (RFC 8460 §4.3.1, §4.3.2).
const (
	StartTLSNotSupported    ResultType = "starttls-not-supported"
	CertificateHostMismatch ResultType = "certificate-host-mismatch"
	CertificateExpired      ResultType = "certificate-expired"
	CertificateNotTrusted   ResultType = "certificate-not-trusted"
	ValidationFailure       ResultType = "validation-failure"
	TLSAInvalid             ResultType = "tlsa-invalid"
	DNSSECInvalid           ResultType = "dnssec-invalid"
	DANERequired            ResultType = "dane-required"
	STSPolicyFetchError     ResultType = "sts-policy-fetch-error"
	STSPolicyInvalid        ResultType = "sts-policy-invalid"
	STSWebPKIInvalid        ResultType = "sts-webpki-invalid"
)

// Report is one RFC 8460 §4 report: one policy domain, one day.
type Report struct {
	OrganizationName string      `json:"organization-name"`
	DateRange        DateRange   `json:"date-range"`
	ContactInfo      string      `json:"contact-info"`
	ReportID         string      `json:"report-id"`
	Policies         []PolicyAgg `json:"policies"`
	// Sender is the reporting domain, first in the file name.
	Sender string `json:"-"`
}

// DateRange is the report's period (RFC 3339 date-times, UTC).
type DateRange struct {
	Start time.Time `json:"start-datetime"`
	End   time.Time `json:"end-datetime"`
}

// PolicyAgg is one element of "policies": a policy and its sessions.
type PolicyAgg struct {
	Policy         PolicyDesc      `json:"policy"`
	Summary        Summary         `json:"summary"`
	FailureDetails []FailureDetail `json:"failure-details,omitempty"`
}

// PolicyDesc is the "policy" object.
type PolicyDesc struct {
	Type   PolicyType `json:"policy-type"`
	String []string   `json:"policy-string,omitempty"`
	Domain string     `json:"policy-domain"`
	MXHost []string   `json:"mx-host,omitempty"`
}

// Summary counts the sessions under a policy.
type Summary struct {
	Successful int64 `json:"total-successful-session-count"`
	Failure    int64 `json:"total-failure-session-count"`
}

// FailureDetail counts the failed sessions of one kind to one MX.
type FailureDetail struct {
	ResultType          ResultType `json:"result-type"`
	SendingMTAIP        string     `json:"sending-mta-ip,omitempty"`
	ReceivingMXHostname string     `json:"receiving-mx-hostname,omitempty"`
	ReceivingIP         string     `json:"receiving-ip,omitempty"`
	FailedSessionCount  int64      `json:"failed-session-count"`
	FailureReasonCode   string     `json:"failure-reason-code,omitempty"`
}

// PolicyDomain is the domain the report is about: that of its first
// policy.
func (r *Report) PolicyDomain() string {
	if len(r.Policies) == 0 {
		return ""
	}
	return r.Policies[0].Policy.Domain
}

// JSON is the report's JSON text.
func (r *Report) JSON() ([]byte, error) {
	return json.MarshalIndent(r, "", "  ")
}

// Gzip is the report as sent: gzip'd JSON (RFC 8460 §5.3).
func (r *Report) Gzip() ([]byte, error) {
	j, err := r.JSON()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Name = r.FileName()[:len(r.FileName())-len(".gz")]
	zw.ModTime = r.DateRange.End
	if _, err := zw.Write(j); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// FileName is the RFC 8460 §5.3 file name:
// sender!policy-domain!begin-timestamp!end-timestamp[!unique-id].json.gz,
// the timestamps in seconds since the epoch.
func (r *Report) FileName() string {
	return fmt.Sprintf("%s!%s!%d!%d.json.gz", r.Sender, r.PolicyDomain(), r.DateRange.Start.Unix(), r.DateRange.End.Unix())
}
