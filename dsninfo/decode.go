package dsninfo

import (
	"bytes"
	"encoding/base64"
	"strings"
)

// decoder undoes a part's Content-Transfer-Encoding line by line and
// hands on the decoded lines, each capped at max bytes.
type decoder struct {
	b64   bool
	carry []byte       // base64 characters not yet decoded (fewer than 4)
	out   lineSplitter // the decoded lines
}

// newDecoder returns a decoder for cte, or nil when the part is not
// encoded (7bit, 8bit, binary, or an encoding this parser does not know,
// which it reads as it is).
func newDecoder(cte string, max int) *decoder {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "base64":
		return &decoder{b64: true, out: lineSplitter{max: max}}
	case "quoted-printable":
		return &decoder{out: lineSplitter{max: max}}
	}
	return nil
}

func (d *decoder) line(l []byte, emit func([]byte)) {
	if d.b64 {
		d.base64(l, emit)
		return
	}
	d.qp(l, emit)
}

func (d *decoder) base64(l []byte, emit func([]byte)) {
	for _, c := range l {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '+', c == '/':
			d.carry = append(d.carry, c)
		case c == '=':
			d.carry = append(d.carry, c)
		}
		if len(d.carry) == 4 {
			var out [3]byte
			n, err := base64.StdEncoding.Decode(out[:], d.carry)
			d.carry = d.carry[:0]
			if err != nil {
				continue
			}
			d.bytes(out[:n], emit)
		}
	}
}

func (d *decoder) qp(l []byte, emit func([]byte)) {
	l = bytes.TrimRight(l, " \t")
	soft := len(l) > 0 && l[len(l)-1] == '='
	if soft {
		l = l[:len(l)-1]
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if c == '=' && i+2 < len(l) && unhex(l[i+1]) >= 0 && unhex(l[i+2]) >= 0 {
			d.bytes([]byte{byte(unhex(l[i+1])<<4 | unhex(l[i+2]))}, emit)
			i += 2
			continue
		}
		d.bytes(l[i:i+1], emit)
	}
	if !soft {
		d.bytes([]byte{'\n'}, emit)
	}
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	}
	return -1
}

// bytes adds decoded bytes, handing on each complete line.
func (d *decoder) bytes(p []byte, emit func([]byte)) { d.out.feed(p, emit) }

// flush hands on the last, unterminated line.
func (d *decoder) flush(emit func([]byte)) { d.out.flush(emit) }

// lineSplitter cuts a stream into lines, without their line ends (LF or
// CRLF), keeping at most max bytes of each.
type lineSplitter struct {
	max       int
	line      []byte
	long      bool
	truncated bool // some line was longer than max
}

func (s *lineSplitter) feed(p []byte, emit func([]byte)) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if room := s.max - len(s.line); len(chunk) > room {
			s.line = append(s.line, chunk[:max(room, 0)]...)
			s.long = true
		} else {
			s.line = append(s.line, chunk...)
		}
		if i < 0 {
			return
		}
		s.end(emit)
		p = p[i+1:]
	}
}

func (s *lineSplitter) end(emit func([]byte)) {
	s.truncated = s.truncated || s.long
	emit(bytes.TrimSuffix(s.line, []byte{'\r'}))
	s.line, s.long = s.line[:0], false
}

// flush hands on the last line if it has no line end.
func (s *lineSplitter) flush(emit func([]byte)) {
	if len(s.line) > 0 || s.long {
		s.end(emit)
	}
}
