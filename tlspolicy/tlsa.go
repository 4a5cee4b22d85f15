package tlspolicy

import (
	"encoding/hex"
	"fmt"

	"github.com/mailsidecar/sidecar/resolver"
)

// TLSA certificate usages (RFC 6698 §2.1.1, names of RFC 7218).
const (
	UsagePKIXTA = 0
	UsagePKIXEE = 1
	UsageDANETA = 2
	UsageDANEEE = 3
)

// TLSARecord is one TLSA record with its usability for SMTP.
type TLSARecord struct {
	resolver.TLSA
	Usable bool
	// Effective is the usage the record is used with: Usage, or 2/3 for
	// 0/1 under dane_pkix_as_dane.
	Effective uint8
	Why       string // why it is unusable, "" when usable
}

func (r TLSARecord) String() string {
	return fmt.Sprintf("%d %d %d %s", r.Usage, r.Selector, r.MatchingType, hex.EncodeToString(r.Data))
}

// digestLen is the data length of the digest matching types (RFC 6698
// §2.1.3: 1 SHA2-256, 2 SHA2-512).
var digestLen = map[uint8]int{1: 32, 2: 64}

// ClassifyTLSA decides whether a TLSA record is usable by an SMTP client
// (RFC 7672 §3.1, RFC 7671 §4). Usages 2 (DANE-TA) and 3 (DANE-EE) are
// usable. Usages 0 and 1 are not, unless pkixAsDANE is set: then 1 (PKIX-EE)
// is used as 3 and 0 (PKIX-TA) as 2, except a digest of a PKIX-TA ("0 0 1",
// "0 1 2", …): it may name a root CA that servers need not send and the
// client cannot know, so it stays unusable. Selectors 0 (full certificate)
// and 1 (SubjectPublicKeyInfo) and matching types 0 (full data), 1 (SHA2-256)
// and 2 (SHA2-512) are usable, with data of the right length: 32 or 64
// octets for digests, a DER SEQUENCE for full data.
func ClassifyTLSA(t resolver.TLSA, pkixAsDANE bool) TLSARecord {
	r := TLSARecord{TLSA: t, Effective: t.Usage}
	switch t.Usage {
	case UsageDANETA, UsageDANEEE:
	case UsagePKIXEE:
		if !pkixAsDANE {
			r.Why = "usage 1 (PKIX-EE) is not used for SMTP (dane_pkix_as_dane is off)"
			return r
		}
		r.Effective = UsageDANEEE
	case UsagePKIXTA:
		if !pkixAsDANE {
			r.Why = "usage 0 (PKIX-TA) is not used for SMTP (dane_pkix_as_dane is off)"
			return r
		}
		if t.MatchingType != 0 {
			r.Why = "usage 0 with a digest names a trust anchor the server need not send"
			return r
		}
		r.Effective = UsageDANETA
	default:
		r.Why = fmt.Sprintf("unknown certificate usage %d", t.Usage)
		return r
	}
	if t.Selector > 1 {
		r.Why = fmt.Sprintf("unknown selector %d", t.Selector)
		return r
	}
	switch t.MatchingType {
	case 0:
		if len(t.Data) < 2 || t.Data[0] != 0x30 {
			r.Why = "full data is not a DER SEQUENCE"
			return r
		}
	case 1, 2:
		if n := digestLen[t.MatchingType]; len(t.Data) != n {
			r.Why = fmt.Sprintf("matching type %d needs %d octets of data, found %d", t.MatchingType, n, len(t.Data))
			return r
		}
	default:
		r.Why = fmt.Sprintf("unknown matching type %d", t.MatchingType)
		return r
	}
	r.Usable = true
	return r
}
