package resolver

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// ednsSize is the UDP payload size advertised in EDNS0 (the DNS Flag Day
// 2020 value, RFC 9715).
const ednsSize = 1232

// Header bits in the third octet of a message.
const (
	bitQR = 0x80
	bitTC = 0x02
)

var (
	errIDMismatch = errors.New("reply ID does not match the query")
	errTooLarge   = errors.New("reply larger than a DNS message")
)

// bufPool holds buffers for reading replies; a decoded reply keeps nothing
// of the buffer.
var bufPool = sync.Pool{New: func() any { b := make([]byte, dns.MaxMsgSize); return &b }}

// exchangeAll asks the servers in order, for r.attempts rounds, until one
// answers. A server that answered with an error rcode is not asked again.
// It returns the reply and the server that gave it, or the last error.
func (r *Resolver) exchangeAll(ctx context.Context, qname string, t Type) (*reply, server, error) {
	var last error
	done := make([]bool, len(r.servers))
	for round := 0; round < r.attempts; round++ {
		asked := false
		for i, srv := range r.servers {
			if done[i] {
				continue
			}
			asked = true
			rep, err := r.exchange(ctx, srv, qname, t)
			if err == nil {
				return rep, srv, nil
			}
			last = err
			if ctx.Err() != nil || errors.Is(err, ErrBadName) {
				return nil, srv, err
			}
			if errors.Is(err, ErrServFail) || errors.Is(err, ErrRefused) {
				done[i] = true
			}
		}
		if !asked {
			break
		}
	}
	if last == nil {
		last = &QueryError{Name: qname, Type: t, Kind: ErrTransport, Err: errors.New("no DNS servers")}
	}
	return nil, server{}, last
}

// exchange sends one query to one server over UDP, and again over TCP when
// the reply is truncated.
func (r *Resolver) exchange(ctx context.Context, srv server, qname string, t Type) (rep *reply, err error) {
	id := uint16(rand.Uint32())
	query, err := packQuery(id, qname, t)
	if err != nil {
		return nil, badName(qname, err.Error())
	}
	if r.obs != nil {
		start := time.Now()
		defer func() {
			var rcode Rcode
			if rep != nil {
				rcode = rep.ans.Rcode
			}
			r.obs.Exchange(t, rcode, err, time.Since(start))
		}()
	}
	rep, truncated, err := r.exchangeUDP(ctx, srv, query, id, qname, t)
	if err == nil && truncated {
		id = uint16(rand.Uint32())
		query, _ = packQuery(id, qname, t)
		rep, err = r.exchangeTCP(ctx, srv, query, id, qname, t)
	}
	if err != nil {
		var qe *QueryError
		if errors.As(err, &qe) {
			qe.Server = srv.addr
		}
		return nil, err
	}
	return rep, nil
}

// packQuery builds a recursive query with EDNS0 and the DO bit (RFC 3225),
// and the AD bit asking for the validation result (RFC 6840 §5.7).
func packQuery(id uint16, qname string, t Type) ([]byte, error) {
	m := new(dns.Msg)
	m.SetQuestion(fqdn(qname), uint16(t))
	m.Id = id
	m.RecursionDesired = true
	m.AuthenticatedData = true
	m.SetEdns0(ednsSize, true)
	return m.Pack()
}

// attempt bounds one attempt by r.timeout and by ctx, and arranges for
// conn's I/O to stop when either ends. The returned function releases it.
func (r *Resolver) attempt(ctx context.Context, conn net.Conn) func() {
	actx, cancel := context.WithTimeout(ctx, r.timeout)
	if dl, ok := actx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(actx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	return func() { stop(); cancel() }
}

func (r *Resolver) exchangeUDP(ctx context.Context, srv server, query []byte, id uint16, qname string, t Type) (*reply, bool, error) {
	fail := func(kind, err error) (*reply, bool, error) {
		return nil, false, &QueryError{Name: qname, Type: t, Kind: kind, Err: err}
	}
	dctx, cancel := context.WithTimeout(ctx, r.timeout)
	var d net.Dialer
	conn, err := d.DialContext(dctx, "udp", srv.addr)
	cancel()
	if err != nil {
		return fail(netKind(ctx, err), err)
	}
	defer conn.Close()
	defer r.attempt(ctx, conn)()

	r.queries.Add(1)
	if _, err := conn.Write(query); err != nil {
		return fail(netKind(ctx, err), ctxErr(ctx, err))
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return fail(netKind(ctx, err), ctxErr(ctx, err))
		}
		wire := buf[:n]
		if n >= 2 && binary.BigEndian.Uint16(wire) != id {
			continue // not ours: a stale or forged datagram
		}
		if n >= 12 && wire[2]&bitQR != 0 && wire[2]&bitTC != 0 {
			return nil, true, nil
		}
		rep, err := decodeResponse(wire, qname, t)
		return rep, false, err
	}
}

func (r *Resolver) exchangeTCP(ctx context.Context, srv server, query []byte, id uint16, qname string, t Type) (*reply, error) {
	fail := func(kind, err error) (*reply, error) {
		return nil, &QueryError{Name: qname, Type: t, Kind: kind, Err: err}
	}
	actx, cancel := context.WithTimeout(ctx, r.timeout)
	var d net.Dialer
	conn, err := d.DialContext(actx, "tcp", srv.addr)
	cancel()
	if err != nil {
		return fail(netKind(ctx, err), ctxErr(ctx, err))
	}
	defer conn.Close()
	defer r.attempt(ctx, conn)()

	r.queries.Add(1)
	msg := make([]byte, 2+len(query))
	binary.BigEndian.PutUint16(msg, uint16(len(query)))
	copy(msg[2:], query)
	if _, err := conn.Write(msg); err != nil {
		return fail(netKind(ctx, err), ctxErr(ctx, err))
	}
	var lenbuf [2]byte
	if _, err := io.ReadFull(conn, lenbuf[:]); err != nil {
		return fail(netKind(ctx, err), ctxErr(ctx, err))
	}
	n := int(binary.BigEndian.Uint16(lenbuf[:]))
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	if n > len(*bp) {
		return fail(ErrTransport, errTooLarge)
	}
	wire := (*bp)[:n]
	if _, err := io.ReadFull(conn, wire); err != nil {
		return fail(netKind(ctx, err), ctxErr(ctx, err))
	}
	if n < 2 || binary.BigEndian.Uint16(wire) != id {
		return fail(ErrTransport, errIDMismatch)
	}
	return decodeResponse(wire, qname, t)
}

// netKind classifies an I/O error: ErrTimeout when a deadline passed or
// ctx ended, ErrTransport otherwise.
func netKind(ctx context.Context, err error) error {
	if ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return ErrTimeout
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ErrTimeout
	}
	return ErrTransport
}

// ctxErr prefers the context's error over the deadline error it caused.
func ctxErr(ctx context.Context, err error) error {
	if e := ctx.Err(); e != nil {
		return e
	}
	return err
}
