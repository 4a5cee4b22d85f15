package milter

import (
	gomilter "github.com/emersion/go-milter"
)

// header records one header field. Its value keeps its exact bytes after
// the colon (the leading space included, negotiated with
// SMFIP_HDR_LEADSPC); an MTA that dropped the space gets it put back.
func (s *session) header(name, value string) {
	if !s.neg.has(gomilter.OptHeaderLeadingSpace) && value != "" {
		value = " " + value
	}
	s.drv.Header(name, value)
}
