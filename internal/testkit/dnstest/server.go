package dnstest

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mailsidecar/sidecar/resolver"
)

// Server is a DNS server on 127.0.0.1 that answers from a Zone over UDP
// and TCP on the same port, like a validating recursive resolver would:
//
//   - the AD bit is set when the Zone's answer is Secure and the query had
//     the DO or AD bit;
//   - CNAME records of the chain come first in the answer section;
//   - NXDOMAIN and NODATA carry an SOA of the zone apex (the last two labels
//     of the name at the end of the chain) in the authority section, with
//     TTL and MINIMUM equal to NegativeTTL;
//   - faults: ServFail answers SERVFAIL, Refused answers REFUSED, Timeout
//     sends nothing, Truncated answers over UDP with TC set and no records
//     (over TCP it answers in full);
//   - UDP answers larger than the query's EDNS0 payload size (512 without
//     EDNS0) are truncated with TC set.
type Server struct {
	Zone *Zone

	addr     string
	udp, tcp *dns.Server
	udpN     atomic.Int64
	tcpN     atomic.Int64

	mu         sync.Mutex
	mangle     func(req, resp *dns.Msg)
	mangleWire func(wire []byte) []byte
}

// NewServer starts a Server for z on a free port of 127.0.0.1. It is shut
// down by tb.Cleanup.
func NewServer(tb testing.TB, z *Zone) *Server {
	tb.Helper()
	s, err := Listen("127.0.0.1:0", z)
	if err != nil {
		tb.Fatalf("dnstest: %v", err)
	}
	tb.Cleanup(s.Close)
	return s
}

// Listen starts a Server for z on addr, UDP and TCP on the same port
// ("127.0.0.1:0" picks a port free for both). It is for tests and for the
// load generator: call Close when done.
func Listen(addr string, z *Zone) (*Server, error) {
	s := &Server{Zone: z}
	var pc net.PacketConn
	var ln net.Listener
	for try := 0; ; try++ {
		var err error
		pc, err = net.ListenPacket("udp", addr)
		if err != nil {
			return nil, errors.Join(errors.New("listen udp"), err)
		}
		ln, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
		if _, port, _ := net.SplitHostPort(addr); port != "0" || try == 50 {
			return nil, errors.Join(errors.New("no port free for both UDP and TCP"), err)
		}
	}
	s.addr = pc.LocalAddr().String()

	h := dns.HandlerFunc(s.serve)
	udpUp, tcpUp := make(chan struct{}), make(chan struct{})
	s.udp = &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: func() { close(udpUp) }}
	s.tcp = &dns.Server{Listener: ln, Handler: h, NotifyStartedFunc: func() { close(tcpUp) },
		ReadTimeout: time.Second, IdleTimeout: func() time.Duration { return time.Second }}
	errc := make(chan error, 2)
	go func() { errc <- s.udp.ActivateAndServe() }()
	go func() { errc <- s.tcp.ActivateAndServe() }()
	for _, up := range []chan struct{}{udpUp, tcpUp} {
		select {
		case <-up:
		case err := <-errc:
			s.Close()
			return nil, errors.Join(errors.New("serve"), err)
		}
	}
	return s, nil
}

// Close shuts the server down.
func (s *Server) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.udp.ShutdownContext(ctx)
	s.tcp.ShutdownContext(ctx)
}

// Addr returns the server's address, "127.0.0.1:PORT", for UDP and TCP.
func (s *Server) Addr() string { return s.addr }

// UDPQueries returns the number of queries received over UDP.
func (s *Server) UDPQueries() int { return int(s.udpN.Load()) }

// TCPQueries returns the number of queries received over TCP.
func (s *Server) TCPQueries() int { return int(s.tcpN.Load()) }

// Mangle installs a hook that may change every response (resp) before it is
// sent, to produce hostile replies: a wrong question, a wrong ID, missing
// sections. The hook runs on the server's goroutines, concurrently for
// concurrent queries, and may block to hold replies back. nil removes it.
func (s *Server) Mangle(f func(req, resp *dns.Msg)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mangle = f
}

// MangleWire installs a hook that may replace every packed response with
// other bytes (garbage, a cut message) before it is sent. nil removes it.
func (s *Server) MangleWire(f func(wire []byte) []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mangleWire = f
}

func (s *Server) hooks() (func(req, resp *dns.Msg), func([]byte) []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mangle, s.mangleWire
}

func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	_, isTCP := w.LocalAddr().(*net.TCPAddr)
	if isTCP {
		s.tcpN.Add(1)
	} else {
		s.udpN.Add(1)
	}
	resp := s.respond(req, isTCP)
	if resp == nil {
		return // Timeout fault: no reply at all
	}
	mangle, mangleWire := s.hooks()
	if mangle != nil {
		mangle(req, resp)
	}
	wire, err := resp.Pack()
	if err != nil {
		panic("dnstest: pack response: " + err.Error())
	}
	if mangleWire != nil {
		wire = mangleWire(wire)
	}
	w.Write(wire)
}

// respond builds the response to req, or nil for no response.
func (s *Server) respond(req *dns.Msg, isTCP bool) *dns.Msg {
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.RecursionAvailable = true
	if len(req.Question) != 1 || req.Question[0].Qclass != dns.ClassINET {
		resp.Rcode = dns.RcodeFormatError
		return resp
	}
	q := req.Question[0]
	qname, err := resolver.ParseName(q.Name)
	if err != nil {
		resp.Rcode = dns.RcodeFormatError
		return resp
	}
	qname = resolver.NormalizeName(qname)
	t := resolver.Type(q.Qtype)
	opt := req.IsEdns0()
	if opt != nil {
		resp.SetEdns0(1232, opt.Do())
	}

	ans, err := s.Zone.Query(context.Background(), qname, t)
	switch {
	case errors.Is(err, resolver.ErrTimeout):
		return nil
	case errors.Is(err, resolver.ErrServFail):
		resp.Rcode = dns.RcodeServerFailure
		return resp
	case err != nil:
		resp.Rcode = dns.RcodeRefused
		return resp
	}
	if !isTCP && s.Zone.FaultFor(qname, t) == Truncated {
		resp.Truncated = true
		return resp
	}
	if ans.Secure && (req.AuthenticatedData || opt != nil && opt.Do()) {
		resp.AuthenticatedData = true
	}
	if ans.Rcode == resolver.RcodeNXDomain {
		resp.Rcode = dns.RcodeNameError
	}
	owner := qname
	for _, target := range ans.CNAME {
		resp.Answer = append(resp.Answer, rr(s.Zone.cnameRecord(owner, target)))
		owner = target
	}
	for _, rec := range ans.Records {
		resp.Answer = append(resp.Answer, rr(rec))
	}
	if len(ans.Records) == 0 {
		resp.Ns = append(resp.Ns, soa(owner))
	}
	if !isTCP {
		size := dns.MinMsgSize
		if opt != nil {
			size = max(size, int(opt.UDPSize()))
		}
		resp.Truncate(size)
	}
	return resp
}

// cnameRecord returns the CNAME record from owner to target.
func (z *Zone) cnameRecord(owner, target string) resolver.Record {
	z.mu.Lock()
	defer z.mu.Unlock()
	for _, rec := range z.rrs[key{owner, resolver.TypeCNAME}] {
		if rec.Target == target {
			return rec
		}
	}
	return resolver.Record{Name: owner, Type: resolver.TypeCNAME, TTL: 300, Target: target}
}

func rr(rec resolver.Record) dns.RR {
	r, err := dns.NewRR(rec.String())
	if err != nil || r == nil {
		panic("dnstest: cannot serve record " + rec.String())
	}
	return r
}

// soa returns the SOA record of the apex of name for negative answers.
func soa(name string) dns.RR {
	apex := name
	if labels := strings.Split(name, "."); len(labels) > 2 {
		apex = strings.Join(labels[len(labels)-2:], ".")
	}
	apex = dns.Fqdn(resolver.FormatName(apex))
	neg := strconv.Itoa(int(NegativeTTL / time.Second))
	r, err := dns.NewRR(apex + " " + neg + " IN SOA ns." + apex + " hostmaster." + apex + " 1 3600 600 86400 " + neg)
	if err != nil {
		panic("dnstest: SOA: " + err.Error())
	}
	return r
}

// NewResolver serves z on a loopback Server and returns the real resolver
// asking it over UDP (and TCP when a reply is truncated), as the daemon
// meets DNS: records cross the wire format and back, where the Zone alone
// would hand them over untouched. The resolver has no cache, so every
// lookup reaches the server, and a short timeout (300ms, one attempt) for
// the zone's Timeout faults. The server is shut down by tb.Cleanup.
func NewResolver(tb testing.TB, z *Zone) *resolver.Resolver {
	tb.Helper()
	s := NewServer(tb, z)
	r, err := resolver.New(resolver.Options{Servers: []string{s.Addr()}, CacheSize: -1,
		Timeout: 300 * time.Millisecond, Attempts: 1})
	if err != nil {
		tb.Fatalf("dnstest: %v", err)
	}
	return r
}
