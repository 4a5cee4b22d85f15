package main

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// The corpus: generated messages from senders in the fake zone's domains
// (loadZone), each with the client address, HELO name, envelope and the
// header fields and body the MTA would pass to the milter.

// message is one corpus entry.
type message struct {
	clientIP string
	family   byte // '4' or '6', go-milter's FamilyInet / FamilyInet6
	helo     string
	sender   string
	rcpts    []string
	headers  [][2]string // name, raw value with its leading space (SMFIP_HDR_LEADSPC)
	body     []byte      // CRLF line ends
	size     int         // header block and body as the MTA received them
}

// senderDomain is the i-th sender domain of the fake zone.
func senderDomain(i int) string { return fmt.Sprintf("d%03d.load.example", i) }

// Client address classes, by SPF result of the sender domains' records:
// 192.0.2.0/24 passes on ip4:, 198.51.100.0/24 passes through include:,
// 203.0.113.0/24 fails on -all, and 2001:db8::/32 passes on ip6:.
func clientFor(r *rand.Rand, i int) (string, byte) {
	switch i % 10 {
	case 7:
		return fmt.Sprintf("198.51.100.%d", 1+r.IntN(250)), '4'
	case 8:
		return fmt.Sprintf("2001:db8::%x", 1+r.IntN(0xfffe)), '6'
	case 9:
		return fmt.Sprintf("203.0.113.%d", 1+r.IntN(250)), '4'
	}
	return fmt.Sprintf("192.0.2.%d", 1+r.IntN(250)), '4'
}

// words is filler text for bodies and subjects.
var words = strings.Fields(`the of and to in is that for it as was with be by on not he this are or
his from at which but have an they you were her she there been one all we their has would when if so
no will can more other its who new some two may first then do any like my now over such our man me
even most made after also did many before must through back years where much your way well down should
because each just those people how too little state good very make world still own see men work long
get here between both life being under never day same another know while last might us great old year
off come since against go came right used take three invoice meeting report quarter shipment delivery`)

// buildCorpus makes n messages of about size bytes each (header block and
// body), with senders spread over domains sender domains.
func buildCorpus(seed uint64, n, size, domains, rcpts int) []*message {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	out := make([]*message, n)
	for i := range out {
		d := senderDomain(i % domains)
		ip, fam := clientFor(r, i)
		m := &message{
			clientIP: ip, family: fam,
			helo:   fmt.Sprintf("mail%d.%s", i%7, d),
			sender: fmt.Sprintf("user%d@%s", i, d),
		}
		for j := range rcpts {
			m.rcpts = append(m.rcpts, fmt.Sprintf("rcpt%d@dest.example", (i+j)%1000))
		}
		m.headers = [][2]string{
			{"Received", fmt.Sprintf(" from %s (%s [%s])\r\n\tby relay.%s with ESMTPS id %08X\r\n\tfor <%s>; Mon, 23 Nov 2026 10:%02d:%02d +0000",
				m.helo, m.helo, ip, d, r.Uint32(), m.rcpts[0], i%60, (i/60)%60)},
			{"Received", fmt.Sprintf(" from [10.%d.%d.%d] by mail%d.%s with ESMTPSA; Mon, 23 Nov 2026 10:%02d:00 +0000",
				r.IntN(256), r.IntN(256), r.IntN(256), i%7, d, i%60)},
			{"Authentication-Results", " relay." + d + "; auth=pass smtp.auth=user" + fmt.Sprint(i)},
			{"From", fmt.Sprintf(" \"User %d\" <%s>", i, m.sender)},
			{"To", " <" + strings.Join(m.rcpts, ">, <") + ">"},
			{"Subject", " " + sentence(r, 4+r.IntN(6))},
			{"Date", fmt.Sprintf(" Mon, 23 Nov 2026 10:%02d:%02d +0000", i%60, (i/60)%60)},
			{"Message-ID", fmt.Sprintf(" <%016x.%d@%s>", r.Uint64(), i, d)},
			{"MIME-Version", " 1.0"},
			{"Content-Type", " text/plain; charset=utf-8"},
			{"Content-Transfer-Encoding", " 8bit"},
		}
		hdrSize := 2 // the empty line
		for _, h := range m.headers {
			hdrSize += len(h[0]) + 1 + len(h[1]) + 2
		}
		m.body = bodyText(r, max(size-hdrSize, 64))
		m.size = hdrSize + len(m.body)
		out[i] = m
	}
	return out
}

func sentence(r *rand.Rand, n int) string {
	w := make([]string, n)
	for i := range w {
		w[i] = words[r.IntN(len(words))]
	}
	s := strings.Join(w, " ")
	return strings.ToUpper(s[:1]) + s[1:]
}

// bodyText returns n bytes of text in lines of at most 76 characters.
func bodyText(r *rand.Rand, n int) []byte {
	b := make([]byte, 0, n+80)
	line := 0
	for len(b) < n-2 {
		w := words[r.IntN(len(words))]
		if line+1+len(w) > 76 {
			b = append(b, '\r', '\n')
			line = 0
			continue
		}
		if line > 0 {
			b = append(b, ' ')
			line++
		}
		b = append(b, w...)
		line += len(w)
	}
	b = b[:min(len(b), n-2)]
	for len(b) > 0 && (b[len(b)-1] == '\r' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return append(b, '\r', '\n')
}
