package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	gomilter "github.com/emersion/go-milter"

	"github.com/mailsidecar/sidecar/milter"
)

// nullProtocol is what the null milter negotiates: what sidecar negotiates
// with the embedded default rules (no DATA or unknown events, no reply to
// any event but the end of the message).
const nullProtocol = gomilter.OptNoData | gomilter.OptNoUnknown |
	gomilter.OptNoHeaderReply | gomilter.OptNoEOHReply | gomilter.OptNoBodyReply |
	gomilter.OptNoConnReply | gomilter.OptNoHeloReply | gomilter.OptNoMailReply | gomilter.OptNoRcptReply

// serveNull serves the baseline of a measurement on t until ctx ends: a
// milter that checks nothing and answers only the end of each message,
// with one inserted Authentication-Results field and accept, in one
// write, over the same negotiation as sidecar's. What the generator
// reaches against it is what the harness allows (go-milter's client, the
// kernel's loopback, the shared cores), whatever the milter does. It
// speaks the protocol itself: go-milter's server answers events negotiated
// as unanswered, which desynchronises the stream.
func serveNull(ctx context.Context, t target) error {
	l, err := net.Listen(t.network, t.address)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	for {
		c, err := l.Accept()
		if err != nil {
			wg.Wait()
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			stop := context.AfterFunc(ctx, func() { c.Close() })
			defer stop()
			nullSession(c)
		}()
	}
}

// nullSession answers one connection until it ends or breaks the protocol.
func nullSession(c io.ReadWriter) error {
	br := bufio.NewReaderSize(c, 4096)
	var hdr [4]byte
	buf := make([]byte, 0, 4096)
	eom := nullPacket(nil, 'i', append(binary.BigEndian.AppendUint32(nil, 0), "Authentication-Results\x00null.example; none\x00"...))
	eom = nullPacket(eom, byte(gomilter.ActAccept), nil)
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return err
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n == 0 || n > milter.MaxFrame {
			return fmt.Errorf("null milter: packet length %d", n)
		}
		if cap(buf) < int(n) {
			buf = make([]byte, n)
		}
		p := buf[:n]
		if _, err := io.ReadFull(br, p); err != nil {
			return err
		}
		var err error
		switch p[0] {
		case 'O':
			if len(p) < 13 {
				return errors.New("null milter: short option negotiation")
			}
			reply := binary.BigEndian.AppendUint32(nil, min(binary.BigEndian.Uint32(p[1:]), 6))
			reply = binary.BigEndian.AppendUint32(reply, uint32(gomilter.OptAddHeader))
			reply = binary.BigEndian.AppendUint32(reply, uint32(nullProtocol))
			_, err = c.Write(nullPacket(nil, 'O', reply))
		case 'E':
			_, err = c.Write(eom)
		case 'Q':
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// nullPacket appends a milter packet to b.
func nullPacket(b []byte, code byte, data []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)+1))
	b = append(b, code)
	return append(b, data...)
}
