package dmarc

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

var errPunycode = errors.New("label cannot be encoded as an A-label")

// toASCII converts a domain name or label to A-labels (RFC 5890
// §2.3.2.1): each label with non-ASCII characters, lower-cased, becomes
// "xn--" and its Punycode encoding (RFC 3492). ASCII input is returned as
// it is. No IDNA2008 mapping or validation is done (idna.Punycode), which
// is enough to look names up in the DNS and in the Public Suffix List; an
// encoded label longer than 63 octets is an error.
func toASCII(s string) (string, error) {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return s, nil
	}
	if !utf8.ValidString(s) {
		return "", errPunycode
	}
	a, err := idna.Punycode.ToASCII(strings.ToLower(s))
	if err != nil {
		return "", fmt.Errorf("%w: %w", errPunycode, err)
	}
	for label := range strings.SplitSeq(a, ".") {
		if len(label) > 63 {
			return "", errPunycode
		}
	}
	return a, nil
}
