package tlspolicy

import (
	"bufio"
	"errors"
	"io"
	"strconv"
	"strings"
)

// MaxRequest bounds one request: a netstring's payload, a tcp_table or a
// line-protocol line. Next hops are at most 261 octets ("[" 253 "]:65535").
const MaxRequest = 1024

// Codec errors.
var (
	ErrTooLong   = errors.New("request too long")
	ErrNetstring = errors.New("malformed netstring")
	ErrEncoding  = errors.New("malformed %XX encoding")
)

// readNetstring reads one netstring "LEN:DATA," (D. J. Bernstein's
// netstrings, as Postfix's and Sendmail's socketmap use) of at most max
// octets of data. Leading zeros are refused, as the definition requires.
func readNetstring(br *bufio.Reader, max int) (string, error) {
	n := 0
	for i := 0; ; i++ {
		b, err := br.ReadByte()
		if err != nil {
			if i > 0 && err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
		if b == ':' && i > 0 {
			break
		}
		if b < '0' || b > '9' || (i == 1 && n == 0) {
			return "", ErrNetstring
		}
		n = n*10 + int(b-'0')
		if n > max {
			return "", ErrTooLong
		}
	}
	buf := make([]byte, n+1)
	if _, err := io.ReadFull(br, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return "", err
	}
	if buf[n] != ',' {
		return "", ErrNetstring
	}
	return string(buf[:n]), nil
}

// appendNetstring appends s as a netstring.
func appendNetstring(dst []byte, s string) []byte {
	dst = strconv.AppendInt(dst, int64(len(s)), 10)
	dst = append(dst, ':')
	dst = append(dst, s...)
	return append(dst, ',')
}

// readLine reads one line of at most max octets, without its "\n" or
// "\r\n". A longer line is ErrTooLong; the rest of it is not consumed.
func readLine(br *bufio.Reader, max int) (string, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull || len(line) > max+2 {
		return "", ErrTooLong
	}
	if err != nil {
		if err == io.EOF && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return "", err
	}
	s := strings.TrimSuffix(string(line[:len(line)-1]), "\r")
	if len(s) > max {
		return "", ErrTooLong
	}
	return s, nil
}

// decodeTCPTable undoes the %XX encoding of Postfix's tcp_table(5).
func decodeTCPTable(s string) (string, error) {
	if strings.IndexByte(s, '%') < 0 {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(s) {
			return "", ErrEncoding
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", ErrEncoding
		}
		b.WriteByte(hi<<4 | lo)
		i += 2
	}
	return b.String(), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// encodeTCPTable %XX-encodes white space, control characters, non-ASCII
// octets and "%", as tcp_table(5) asks of replies.
func encodeTCPTable(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '%' {
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// oneLine makes text safe as one line of a reply: control characters
// become spaces, and it is cut at 400 octets.
func oneLine(s string) string {
	if len(s) > 400 {
		s = s[:400]
	}
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
