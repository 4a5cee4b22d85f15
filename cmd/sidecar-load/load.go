package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gomilter "github.com/emersion/go-milter"
)

// A load run: -c workers, each one milter connection at a time as one MTA
// smtpd process would hold it: negotiate, connect, HELO, then per message
// MAIL, RCPT, header fields, end of headers, body chunks and end of
// message, -per-conn messages per connection.

// target is where the milter listens.
type target struct{ network, address string }

// parseAddr reads a milter address as Postfix writes it (inet:HOST:PORT,
// inet:[IPV6]:PORT, unix:/PATH) or as Sendmail does (inet:PORT@HOST,
// inet6:PORT@HOST, local:/PATH); a bare HOST:PORT is TCP.
func parseAddr(s string) (target, error) {
	kind, rest, ok := strings.Cut(s, ":")
	if !ok || strings.HasPrefix(rest, "//") {
		return target{}, fmt.Errorf("milter address %q: want inet:HOST:PORT or unix:/PATH", s)
	}
	switch kind {
	case "unix", "local":
		return target{"unix", rest}, nil
	case "inet", "inet6":
		if port, host, ok := strings.Cut(rest, "@"); ok {
			return target{"tcp", net.JoinHostPort(host, port)}, nil
		}
		if _, _, err := net.SplitHostPort(rest); err != nil {
			return target{}, fmt.Errorf("milter address %q: %w", s, err)
		}
		return target{"tcp", rest}, nil
	}
	if _, _, err := net.SplitHostPort(s); err == nil {
		return target{"tcp", s}, nil
	}
	return target{}, fmt.Errorf("milter address %q: want inet:HOST:PORT or unix:/PATH", s)
}

// plan is what a run does.
type plan struct {
	target   target
	corpus   []*message
	conc     int
	count    int           // messages; 0: until duration
	duration time.Duration // 0: until count
	rate     float64       // messages per second over all workers; 0: as fast as possible
	perConn  int
	pipeline bool          // coalesce packets that get no reply into one write
	dkim     bool          // the corpus is DKIM-signed: count dkim=pass
	idle     time.Duration // hold every connection open (after HELO) this long before the first message
	timeout  time.Duration
	onIdle   func() // called once every connection is open, after idle
}

// outcome is what a run measured.
type outcome struct {
	latencies []time.Duration // one per completed message
	errors    int64           // protocol errors and timeouts
	refused   int64           // messages the milter did not accept
	withAR    int64           // messages that got our Authentication-Results header
	dkimPass  int64           // messages whose Authentication-Results says dkim=pass
	firstErr  error
	elapsed   time.Duration // from the first message to the last
	conns     int64
}

// slots hands out the messages to send: a scheduled time (the zero time
// when not rate-limited) and the corpus index.
type slots struct {
	ch      chan time.Time // rate-limited: filled by the dispatcher
	n       atomic.Int64
	count   int64
	end     time.Time
	stopped atomic.Bool
}

func (s *slots) next() (time.Time, int, bool) {
	if s.stopped.Load() {
		return time.Time{}, 0, false
	}
	if s.ch != nil {
		t, ok := <-s.ch
		return t, int(s.n.Add(1) - 1), ok
	}
	i := s.n.Add(1) - 1
	if s.count > 0 && i >= s.count {
		return time.Time{}, 0, false
	}
	if !s.end.IsZero() && time.Now().After(s.end) {
		return time.Time{}, 0, false
	}
	return time.Time{}, int(i), true
}

// dispatch fills s.ch at a fixed rate from start until count messages or
// the end; it closes s.ch when done or when ctx ends.
func (s *slots) dispatch(ctx context.Context, start time.Time, rate float64) {
	defer close(s.ch)
	interval := time.Duration(float64(time.Second) / rate)
	for i := int64(0); s.count == 0 || i < s.count; i++ {
		at := start.Add(time.Duration(i) * interval)
		if !s.end.IsZero() && at.After(s.end) {
			return
		}
		if d := time.Until(at); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return
			}
		}
		select {
		case s.ch <- at:
		case <-ctx.Done():
			return
		}
	}
}

// run drives the milter according to p.
func run(ctx context.Context, p plan) *outcome {
	var (
		mu  sync.Mutex
		out = &outcome{}
		wg  sync.WaitGroup
	)
	record := func(lat []time.Duration, errs, refused, withAR, dkimPass, conns int64, firstErr error) {
		mu.Lock()
		defer mu.Unlock()
		out.latencies = append(out.latencies, lat...)
		out.errors += errs
		out.refused += refused
		out.withAR += withAR
		out.dkimPass += dkimPass
		out.conns += conns
		if out.firstErr == nil {
			out.firstErr = firstErr
		}
	}
	s := &slots{count: int64(p.count)}
	ready := sync.WaitGroup{}
	ready.Add(p.conc)
	startCh := make(chan struct{})
	client := gomilter.NewClientWithOptions(p.target.network, p.target.address, gomilter.ClientOptions{
		Dialer:       &dialer{d: net.Dialer{Timeout: p.timeout}, pipeline: p.pipeline},
		ReadTimeout:  p.timeout,
		WriteTimeout: p.timeout,
		// go-milter's client offers protocol version 6 but the server
		// answers 2: the masks must stay within what version 2 knows or
		// the client refuses to downgrade. With a protocol mask of 0 the
		// client honours whatever the milter asks (no replies to header
		// fields and body chunks).
		ActionMask:   0x3f,
		ProtocolMask: 0,
	})
	for w := range p.conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wk := &worker{id: w, p: p, client: client}
			var once sync.Once
			signalReady := func() { once.Do(ready.Done) }
			if p.idle > 0 {
				// Open the connection now and hold it, idle, until all are.
				if err := wk.open(); err != nil {
					wk.fail(err)
				}
				signalReady()
				<-startCh
			} else {
				signalReady()
				<-startCh
			}
			for {
				at, i, ok := s.next()
				if !ok || ctx.Err() != nil {
					break
				}
				start := time.Now()
				if !at.IsZero() {
					start = at // latency counts time spent behind schedule
				}
				m := p.corpus[i%len(p.corpus)]
				if err := wk.message(m); err != nil {
					wk.fail(err)
					continue
				}
				wk.lat = append(wk.lat, time.Since(start))
			}
			wk.close()
			record(wk.lat, wk.errors, wk.refused, wk.withAR, wk.dkimPass, wk.conns, wk.firstErr)
		}()
	}
	ready.Wait()
	if p.idle > 0 {
		select {
		case <-time.After(p.idle):
		case <-ctx.Done():
		}
	}
	if p.onIdle != nil {
		p.onIdle()
	}
	begin := time.Now()
	if p.duration > 0 {
		s.end = begin.Add(p.duration)
	}
	if p.rate > 0 {
		s.ch = make(chan time.Time, p.conc)
		dctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go s.dispatch(dctx, begin, p.rate)
	}
	close(startCh)
	wg.Wait()
	out.elapsed = time.Since(begin)
	return out
}

// dialer gives go-milter's client connections that read through a buffer
// (one read per reply instead of two: the library reads the length and
// the payload separately) and, with pipeline, write through one: the
// packets the milter does not answer (macros, header fields, body chunks
// after negotiation) go out together with the next one it does, in one
// write. Without pipeline every packet is its own write, as Postfix and
// Sendmail do.
type dialer struct {
	d        net.Dialer
	pipeline bool
}

func (d *dialer) Dial(network, addr string) (net.Conn, error) {
	c, err := d.d.Dial(network, addr)
	if err != nil {
		return nil, err
	}
	cc := &clientConn{Conn: c, br: bufio.NewReaderSize(c, 4096)}
	if d.pipeline {
		cc.bw = bufio.NewWriterSize(c, 32<<10)
	}
	return cc, nil
}

type clientConn struct {
	net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer // nil: write through
	deadline time.Time
}

// SetReadDeadline and SetWriteDeadline: go-milter's client sets a deadline
// before every packet it reads or writes and clears it after, four timer
// updates per packet that cost the generator more CPU than the rest of a
// packet's work in user space, CPU taken from the milter under test on a
// shared machine. The connection keeps one deadline for both directions
// instead, moved only when the one asked for is more than a second later:
// a stalled milter is still caught within the timeout and a second.
func (c *clientConn) SetReadDeadline(t time.Time) error  { return c.lazyDeadline(t) }
func (c *clientConn) SetWriteDeadline(t time.Time) error { return c.lazyDeadline(t) }

func (c *clientConn) lazyDeadline(t time.Time) error {
	if t.IsZero() || t.Sub(c.deadline) < time.Second {
		return nil
	}
	c.deadline = t
	return c.Conn.SetDeadline(t)
}

func (c *clientConn) Read(p []byte) (int, error) {
	if c.bw != nil && c.bw.Buffered() > 0 {
		if err := c.bw.Flush(); err != nil {
			return 0, err
		}
	}
	return c.br.Read(p)
}

func (c *clientConn) Write(p []byte) (int, error) {
	if c.bw != nil {
		return c.bw.Write(p)
	}
	return c.Conn.Write(p)
}

func (c *clientConn) Close() error {
	if c.bw != nil {
		c.bw.Flush()
	}
	return c.Conn.Close()
}

// worker is one simulated MTA process.
type worker struct {
	id     int
	p      plan
	client *gomilter.Client
	sess   *gomilter.ClientSession
	sent   int // messages on this connection
	peer   *message

	lat                                      []time.Duration
	errors, refused, withAR, dkimPass, conns int64
	firstErr                                 error
}

// errRefused is a message the milter did not accept (not a protocol error).
var errRefused = errors.New("refused")

func (w *worker) fail(err error) {
	if errors.Is(err, errRefused) {
		w.refused++
		return
	}
	w.errors++
	if w.firstErr == nil {
		w.firstErr = err
	}
	if w.sess != nil {
		w.sess.Close()
		w.sess = nil
	}
}

// open connects and sends the connect and HELO stages of the SMTP client
// of corpus message w.id.
func (w *worker) open() error {
	s, err := w.client.Session()
	if err != nil {
		return err
	}
	w.sess, w.sent, w.peer = s, 0, w.p.corpus[w.id%len(w.p.corpus)]
	w.conns++
	m := w.peer
	if err := s.Macros(gomilter.CodeConn, "j", "mx.load.example", "{daemon_name}", "smtpd",
		"{daemon_addr}", "192.0.2.25", "{daemon_port}", "25", "v", "Postfix 3.7.11"); err != nil {
		return err
	}
	fam := gomilter.FamilyInet
	if m.family == '6' {
		fam = gomilter.FamilyInet6
	}
	if err := want(s.Conn(m.helo, fam, 40000+uint16(w.id%20000), m.clientIP)); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	if err := want(s.Helo(m.helo)); err != nil {
		return fmt.Errorf("HELO: %w", err)
	}
	return nil
}

// message sends one message, opening a connection first when there is
// none. The client address and HELO name of a connection are those of the
// message that opened it; MAIL FROM and the content are m's.
func (w *worker) message(m *message) error {
	if w.sess == nil {
		if err := w.open(); err != nil {
			return err
		}
	}
	s := w.sess
	qid := fmt.Sprintf("%X%04X", w.id, w.sent)
	if err := s.Macros(gomilter.CodeMail, "i", qid, "{mail_addr}", m.sender); err != nil {
		return err
	}
	if err := want(s.Mail(m.sender, nil)); err != nil {
		return w.refuse("MAIL", err)
	}
	accepted := 0
	for _, r := range m.rcpts {
		if err := s.Macros(gomilter.CodeRcpt, "i", qid, "{rcpt_addr}", r); err != nil {
			return err
		}
		if err := want(s.Rcpt(r, nil)); err != nil {
			if !errors.Is(err, errRefused) {
				return err
			}
			continue
		}
		accepted++
	}
	if accepted == 0 {
		return w.refuse("RCPT", errRefused)
	}
	if err := s.Macros(gomilter.CodeData, "i", qid); err != nil {
		return err
	}
	for _, h := range m.headers {
		if err := want(s.HeaderField(h[0], h[1])); err != nil {
			return w.refuse("header", err)
		}
	}
	if err := want(s.HeaderEnd()); err != nil {
		return w.refuse("end of headers", err)
	}
	for b := m.body; len(b) > 0; {
		n := min(len(b), gomilter.MaxBodyChunk)
		if err := want(s.BodyChunk(b[:n])); err != nil {
			return w.refuse("body", err)
		}
		b = b[n:]
	}
	if err := s.Macros(gomilter.CodeEOB, "i", qid); err != nil {
		return err
	}
	mods, act, err := s.End()
	if err != nil {
		return fmt.Errorf("end of message: %w", err)
	}
	w.sent++
	if act.Code != gomilter.ActAccept && act.Code != gomilter.ActContinue {
		w.after()
		return errRefused
	}
	for _, mod := range mods {
		if (mod.Code == gomilter.ActInsertHeader || mod.Code == gomilter.ActAddHeader) && mod.HeaderName == "Authentication-Results" {
			w.withAR++
			if strings.Contains(mod.HeaderValue, "dkim=pass") {
				w.dkimPass++
			}
			break
		}
	}
	w.after()
	return nil
}

// after ends the connection when it has carried -per-conn messages.
func (w *worker) after() {
	if w.p.perConn > 0 && w.sent >= w.p.perConn {
		w.close()
	}
}

// refuse handles a stage the milter did not continue: the MTA aborts the
// transaction (the connection stays usable).
func (w *worker) refuse(stage string, err error) error {
	if !errors.Is(err, errRefused) {
		return fmt.Errorf("%s: %w", stage, err)
	}
	if aerr := w.sess.Abort(); aerr != nil {
		return aerr
	}
	w.sent++
	w.after()
	return errRefused
}

func (w *worker) close() {
	if w.sess != nil {
		w.sess.Close()
		w.sess = nil
	}
}

// want turns a reply other than continue into errRefused.
func want(act *gomilter.Action, err error) error {
	if err != nil {
		return err
	}
	if act.Code != gomilter.ActContinue {
		return fmt.Errorf("%w: %c %d %s", errRefused, act.Code, act.SMTPCode, act.SMTPText)
	}
	return nil
}
