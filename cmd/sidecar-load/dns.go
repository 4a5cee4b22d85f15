package main

import (
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// fakeDNS is a DNS server on loopback that answers for the corpus' sender
// domains (UDP and TCP on one port), so that SPF and DMARC run without the
// network. The sidecar's resolver caches its answers: after the warm-up
// every lookup is a cache hit, as on a busy MX.
type fakeDNS struct {
	addr     string
	udp, tcp *dns.Server
	queries  atomic.Int64
	records  map[string][]dns.RR // "name.\x00TYPE" -> records
	names    map[string]bool     // every name that exists
}

// loadZone returns the zone's records in presentation format: for each
// sender domain an SPF record (ip4:, include: and ip6: mechanisms, -all)
// and a DMARC record, and the included record.
func loadZone(domains int) []string {
	recs := []string{
		`_spf.load.example. 3600 IN TXT "v=spf1 ip4:198.51.100.0/24 ~all"`,
	}
	for i := range domains {
		d := senderDomain(i)
		recs = append(recs,
			fmt.Sprintf(`%s. 3600 IN TXT "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 include:_spf.load.example -all"`, d),
			fmt.Sprintf(`%s. 3600 IN MX 10 mx.%s.`, d, d),
			fmt.Sprintf(`_dmarc.%s. 3600 IN TXT "v=DMARC1; p=none; rua=mailto:dmarc@%s"`, d, d),
		)
	}
	return recs
}

func rrKey(name string, t uint16) string { return strings.ToLower(name) + "\x00" + dns.TypeToString[t] }

// startFakeDNS serves records on addr ("127.0.0.1:0" for a free port).
func startFakeDNS(addr string, records []string) (*fakeDNS, error) {
	f := &fakeDNS{records: map[string][]dns.RR{}, names: map[string]bool{}}
	for _, text := range records {
		rr, err := dns.NewRR(text)
		if err != nil {
			return nil, fmt.Errorf("zone record %q: %w", text, err)
		}
		h := rr.Header()
		k := rrKey(h.Name, h.Rrtype)
		f.records[k] = append(f.records[k], rr)
		for n := strings.ToLower(h.Name); n != "" && n != "."; {
			f.names[n] = true
			_, rest, ok := strings.Cut(n, ".")
			if !ok {
				break
			}
			n = rest
		}
	}
	// UDP and TCP on the same port: with port 0, retry until the UDP
	// port is also free for TCP.
	var pc net.PacketConn
	var ln net.Listener
	for try := 0; ; try++ {
		var err error
		if pc, err = net.ListenPacket("udp", addr); err != nil {
			return nil, err
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		if _, port, _ := net.SplitHostPort(addr); port != "0" || try == 50 {
			return nil, err
		}
	}
	f.addr = pc.LocalAddr().String()
	up := make(chan struct{}, 2)
	h := dns.HandlerFunc(f.serve)
	f.udp = &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: func() { up <- struct{}{} }}
	f.tcp = &dns.Server{Listener: ln, Handler: h, NotifyStartedFunc: func() { up <- struct{}{} },
		ReadTimeout: 2 * time.Second, IdleTimeout: func() time.Duration { return 2 * time.Second }}
	go f.udp.ActivateAndServe()
	go f.tcp.ActivateAndServe()
	for range 2 {
		select {
		case <-up:
		case <-time.After(5 * time.Second):
			f.Close()
			return nil, fmt.Errorf("fake DNS on %s did not start", f.addr)
		}
	}
	return f, nil
}

// Close stops the server.
func (f *fakeDNS) Close() {
	f.udp.Shutdown()
	f.tcp.Shutdown()
}

func (f *fakeDNS) serve(w dns.ResponseWriter, req *dns.Msg) {
	f.queries.Add(1)
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.Authoritative = true
	if len(req.Question) != 1 {
		resp.Rcode = dns.RcodeFormatError
		w.WriteMsg(resp)
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	resp.Answer = append(resp.Answer, f.records[rrKey(name, q.Qtype)]...)
	if len(resp.Answer) == 0 {
		// NXDOMAIN or NODATA, with an SOA so that the answer is cached.
		if !f.names[name] {
			resp.Rcode = dns.RcodeNameError
		}
		soa, _ := dns.NewRR("load.example. 3600 IN SOA ns.load.example. hostmaster.load.example. 1 3600 600 86400 3600")
		resp.Ns = append(resp.Ns, soa)
	}
	if opt := req.IsEdns0(); opt != nil {
		resp.SetEdns0(opt.UDPSize(), false)
	}
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		size := dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil {
			size = int(opt.UDPSize())
		}
		resp.Truncate(size)
	}
	w.WriteMsg(resp)
}
