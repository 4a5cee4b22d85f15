package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"
	"github.com/miekg/dns"

	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
)

// TestSoak runs the sidecar binary as its own process under a steady load
// for a while: soakSessions milter sessions open at once (the load
// generator's workers, each an MTA smtpd process with a connection per
// few messages and a pause between messages), policy queries over
// socketmap and tcp_table, a SIGHUP every few seconds alternating two
// valid configurations and, every fourth time, a broken one that must be
// refused while the running one stays in force, and a DNS server on
// loopback that lets a fraction of the queries time out. It asserts that
// every message gets exactly one answer (counted on the wire), every
// policy query an answer that is the next hop's policy or TEMP (never a
// downgrade), the daemon's memory and goroutines flat, and a clean exit
// on SIGTERM.
//
// By default the load lasts soakShort, for make test; SIDECAR_SOAK=10m
// sets another length:
//
//	SIDECAR_SOAK=10m go test -run TestSoak -v -timeout 30m ./cmd/sidecar-load/
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the soak test in -short mode: it builds and runs the daemon")
	}
	loadFor, reloadEvery := soakShort, 1500*time.Millisecond
	if v := os.Getenv("SIDECAR_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second {
			t.Fatalf("SIDECAR_SOAK=%q: want a duration of at least 1s, such as 10m", v)
		}
		loadFor, reloadEvery = d, 3*time.Second
	}
	dir := t.TempDir()
	bin := buildSidecar(t, dir)

	// DNS: the load generator's sender domains (SPF, DMARC) and the policy
	// next hops, a fraction of all queries held past dns_timeout.
	zone, queries := soakZone()
	srv, err := dnstest.Listen("127.0.0.1:0", zone)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var dnsQueries, dnsTimeouts, dnsDead atomic.Int64
	srv.Mangle(func(req, resp *dns.Msg) {
		dnsQueries.Add(1)
		switch {
		case strings.HasPrefix(req.Question[0].Name, "dead"):
			// Dead next hops: a reply with another ID, which the resolver
			// discards as not its own; the query is never answered
			// however late the daemon gets to read its socket.
			dnsTimeouts.Add(1)
			dnsDead.Add(1)
			resp.Id ^= 0x5a5a
		case rand.Float64() < soakDNSTimeoutFraction:
			// The answer comes after the resolver gave up. On a starved
			// machine the daemon may still read it (its deadline fires
			// late): the data is then true, and the policy it gives too.
			dnsTimeouts.Add(1)
			time.Sleep(soakDNSHold)
		}
	})
	// The zone's query log would grow for the whole run.
	stopReset := make(chan struct{})
	defer close(stopReset)
	go func() {
		for {
			select {
			case <-time.After(time.Second):
				zone.ResetQueries()
			case <-stopReset:
				return
			}
		}
	}()

	conf := filepath.Join(dir, "sidecar.conf")
	confA, confB := soakConfig(srv.Addr(), "a"), soakConfig(srv.Addr(), "b")
	broken := confA + "  deny domian = x\n"
	if err := os.WriteFile(conf, []byte(confA), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startSoakDaemon(t, bin, conf)
	addrs := map[string]string{}
	for len(addrs) < 2 {
		ev := d.next(30*time.Second, "listening")
		addrs[ev.option] = ev.bound
	}
	d.next(30*time.Second, "started")
	pid := d.cmd.Process.Pid

	var loadStart time.Time
	var loadStarted atomic.Bool
	since := func() time.Duration {
		if !loadStarted.Load() {
			return -time.Nanosecond
		}
		return time.Since(loadStart)
	}
	mem := sampleMemory(pid, 250*time.Millisecond, since)

	// Idle baseline: a reload of the same file logs the goroutine count.
	if ok, _ := d.reload(conf, confA); !ok {
		t.Fatal("reload of the starting configuration refused")
	}
	_, goIdleStart := d.reload(conf, confA)
	rssIdleStart, _, _ := procStatus(pid)

	// The milter sessions: all open (connect and HELO done) before the load.
	corpus := buildCorpus(1, 200, 10240, 50, 1)
	tgt := target{"tcp", addrs["milter_listen"]}
	wires := newWireTally()
	client := soakClient(tgt, wires)
	p := plan{target: tgt, corpus: corpus, perConn: soakPerConn, timeout: 30 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		opened, finished sync.WaitGroup
		start            = make(chan struct{})
		mu               sync.Mutex
		msgs, refused    int64
		errs             int64
		firstErr         error
	)
	think := time.Duration(float64(soakSessions) / soakRate * float64(time.Second))
	for i := range soakSessions {
		opened.Add(1)
		finished.Add(1)
		go func() {
			defer finished.Done()
			wk := &worker{id: i, p: p, client: client}
			if err := wk.open(); err != nil {
				wk.fail(err)
			}
			opened.Done()
			<-start
			for {
				select {
				case <-time.After(rand.N(2 * think)):
				case <-ctx.Done():
				}
				if ctx.Err() != nil {
					break
				}
				if err := wk.message(corpus[rand.IntN(len(corpus))]); err != nil {
					wk.fail(err)
					continue
				}
				wk.lat = append(wk.lat, 0)
				if wk.sess == nil && ctx.Err() == nil {
					// The next SMTP session comes at once: the
					// sessions stay open all the time.
					if err := wk.open(); err != nil {
						wk.fail(err)
					}
				}
			}
			wk.close()
			mu.Lock()
			msgs += int64(len(wk.lat))
			refused += wk.refused
			errs += wk.errors
			if firstErr == nil {
				firstErr = wk.firstErr
			}
			mu.Unlock()
		}()
	}
	opened.Wait()
	wires.mu.Lock()
	openAtOnce := wires.open
	wires.mu.Unlock()
	_, goSessionsIdle := d.reload(conf, confA)
	rssSessionsIdle, _, _ := procStatus(pid)

	// The load: sessions, policy clients, reloads with a probe message each.
	loadStart = time.Now()
	loadStarted.Store(true)
	close(start)
	// Sessions open during the load, as the MTA side counts them.
	openMin, openSum, openN := soakSessions, 0, 0
	openDone := make(chan struct{})
	openCtx, openStop := context.WithCancel(ctx)
	go func() {
		defer close(openDone)
		for {
			select {
			case <-time.After(250 * time.Millisecond):
			case <-openCtx.Done():
				return
			}
			wires.mu.Lock()
			openMin, openSum, openN = min(openMin, wires.open), openSum+wires.open, openN+1
			wires.mu.Unlock()
		}
	}()
	pol := &policyTally{protoSeen: map[string]int{}}
	var polWG sync.WaitGroup
	for i := range soakPolicyClients {
		polWG.Add(1)
		go func() {
			defer polWG.Done()
			policyClient(ctx, addrs["policy_listen"], i%2 == 0, queries, 50, soakPolicyThink, pol)
		}()
	}
	type reloadRecord struct {
		at         time.Duration
		want, ok   bool
		goroutines int
		probe      string // authserv-id a new session got afterwards
		probeWant  string
	}
	probeEOMs := 0
	var reloads []reloadRecord
	inForce := "a"
	nextReport := time.Minute
	for n := 0; time.Since(loadStart) < loadFor; n++ {
		select {
		case <-time.After(reloadEvery):
		case <-time.After(time.Until(loadStart.Add(loadFor))):
		}
		if time.Since(loadStart) >= loadFor {
			break
		}
		// The other valid configuration, or every fourth time the broken one.
		text, want, name := confB, true, "b"
		switch {
		case n%4 == 3:
			text, want, name = broken, false, inForce
		case inForce == "b":
			text, name = confA, "a"
		}
		at := time.Since(loadStart)
		ok, g := d.reload(conf, text)
		if ok {
			inForce = name
		}
		if loadFor >= 2*time.Minute && at >= nextReport {
			// The course of a long run, a line a minute.
			nextReport += time.Minute
			rss, threads, _ := procStatus(pid)
			wires.mu.Lock()
			answered, open := wires.eomOnce, wires.open
			wires.mu.Unlock()
			t.Logf("at %v: RSS %s, %d goroutines at this SIGHUP, %d OS threads, %d sessions open, %d messages answered so far, %d DNS timeouts injected",
				at.Round(time.Second), mib(rss), g, threads, open, answered, dnsTimeouts.Load())
		}
		id, eoms := soakProbe(tgt, corpus, n)
		probeEOMs += eoms
		reloads = append(reloads, reloadRecord{at: at, want: want, ok: ok, goroutines: g,
			probe: id, probeWant: "soak-" + inForce + ".example"})
	}
	loadTime := time.Since(loadStart)
	openStop()
	<-openDone
	cancel()
	finished.Wait()
	polWG.Wait()
	stopped := time.Since(loadStart)

	// Idle again: every session closed, the goroutines back to the
	// baseline (the daemon may take a moment to notice closed sockets).
	var goIdleEnd int
	for try := 0; try < 20; try++ {
		time.Sleep(500 * time.Millisecond)
		if _, goIdleEnd = d.reload(conf, confA); goIdleEnd <= goIdleStart+soakGoroutineSlack {
			break
		}
	}
	rssIdleEnd, threadsEnd, _ := procStatus(pid)
	samples := mem.finish()
	code := d.stop(60 * time.Second)

	// The figures.
	var okN, refusedN, wrongReload, probeBad int
	var goLoadFirst, goLoadLast int
	for i, r := range reloads {
		if r.ok {
			okN++
		} else {
			refusedN++
		}
		if r.ok != r.want {
			wrongReload++
			t.Errorf("reload %d at %v: taken=%v, want %v", i, r.at.Round(time.Millisecond), r.ok, r.want)
		}
		if r.probe != r.probeWant {
			probeBad++
			t.Errorf("reload %d at %v (taken=%v): a new session got authserv-id %q, want %q (the configuration in force)", i, r.at.Round(time.Millisecond), r.ok, r.probe, r.probeWant)
		}
		if i == 0 {
			goLoadFirst = r.goroutines
		}
		goLoadLast = r.goroutines
	}
	early := maxRSS(samples, loadTime/5, 2*loadTime/5)
	late := maxRSS(samples, 4*loadTime/5, loadTime)
	peak := maxRSS(samples, 0, stopped)
	w := wires
	t.Logf("soak: %v of load (%v until every session and query ended), %d milter sessions, %d policy clients, machine: %d CPUs",
		loadTime.Round(time.Millisecond), stopped.Round(time.Millisecond), soakSessions, soakPolicyClients, runtime.NumCPU())
	t.Logf("milter: %d sessions open at once before the load, during it %d at least and %.0f on average; %d messages answered (%d refused by the milter), %d errors; on the wire: %d end-of-message, %d answered exactly once, %d lost, %d answered twice or more; other commands: %d replies missing, %d extra; %d connections, %d not closed by the milter after QUIT; authserv-ids %v; daemon log: %d transaction lines (and %d probe messages after the reloads)",
		openAtOnce, openMin, float64(openSum)/float64(max(openN, 1)), msgs, refused, errs, w.eom, w.eomOnce, w.eomLost, w.eomDouble, w.lost, w.extra, w.conns, w.noEOF, w.authservIDs, d.transactions, probeEOMs)
	t.Logf("policy: %d queries, %d answered (%d policies as expected, %d TEMP after a DNS timeout, %d TEMP for dead next hops), %d wrong, %d without answer; by protocol %v",
		pol.sent, pol.answered, pol.policies, pol.temp, pol.deadTemp, pol.wrong, pol.errors, pol.protoSeen)
	t.Logf("reloads: %d (%d taken, %d refused), every %v; DNS: %d queries, %d timeouts injected (%d at random, %.0f%% of the queries; %d for the dead next hops)",
		len(reloads), okN, refusedN, reloadEvery, dnsQueries.Load(), dnsTimeouts.Load(), dnsTimeouts.Load()-dnsDead.Load(), 100*soakDNSTimeoutFraction, dnsDead.Load())
	t.Logf("daemon RSS: %s idle at start, %s with %d idle sessions, max %s in the load's 2nd fifth, max %s in its last fifth, peak %s, %s idle at the end",
		mib(rssIdleStart), mib(rssSessionsIdle), soakSessions, mib(early), mib(late), mib(peak), mib(rssIdleEnd))
	t.Logf("daemon goroutines: %d idle at start, %d with the sessions open, %d at the first reload under load, %d at the last, %d idle at the end (OS threads at the end: %d)",
		goIdleStart, goSessionsIdle, goLoadFirst, goLoadLast, goIdleEnd, threadsEnd)
	t.Logf("daemon: exit status %d, %d panic lines, %d error lines %q", code, len(d.panics), d.errorCount, d.errorLines)

	// The assertions.
	if openAtOnce != soakSessions {
		t.Errorf("%d milter sessions open at once, want %d", openAtOnce, soakSessions)
	}
	if errs != 0 {
		t.Errorf("%d milter sessions failed; the first: %v", errs, firstErr)
	}
	if w.eom == 0 || w.eomOnce != w.eom || w.eomLost != 0 || w.eomDouble != 0 {
		t.Errorf("end of message sent %d times, answered once %d times, lost %d, answered more than once %d", w.eom, w.eomOnce, w.eomLost, w.eomDouble)
	}
	if int64(w.eom) != msgs+refused {
		t.Errorf("%d end-of-message commands on the wire, %d messages sent", w.eom, msgs+refused)
	}
	if d.transactions != w.eom+probeEOMs {
		t.Errorf("%d transaction lines in the daemon's log, %d messages sent (%d by the load, %d probes)", d.transactions, w.eom+probeEOMs, w.eom, probeEOMs)
	}
	if w.lost != 0 || w.extra != 0 || w.noEOF != 0 {
		t.Errorf("other commands: %d replies missing, %d extra, %d connections left open by the milter after QUIT", w.lost, w.extra, w.noEOF)
	}
	if msgs < soakSessions {
		t.Errorf("%d messages answered, want at least one per session (%d)", msgs, soakSessions)
	}
	if w.authservIDs["soak-a.example"] == 0 || w.authservIDs["soak-b.example"] == 0 || len(w.authservIDs) != 2 {
		t.Errorf("authserv-ids %v, want both configurations' and no other", w.authservIDs)
	}
	if pol.sent == 0 || pol.answered != pol.sent || pol.wrong != 0 || pol.errors != 0 {
		t.Errorf("policy: %d queries, %d answered, %d wrong, %d without answer: %q", pol.sent, pol.answered, pol.wrong, pol.errors, pol.firstBad)
	}
	if pol.temp == 0 || pol.deadTemp == 0 || pol.policies == 0 {
		t.Errorf("policy: %d TEMP after a timeout, %d TEMP for dead next hops, %d policies: the run did not exercise every case", pol.temp, pol.deadTemp, pol.policies)
	}
	if okN < 2 || refusedN < 1 {
		t.Errorf("%d reloads taken and %d refused, want at least 2 and 1", okN, refusedN)
	}
	if dnsTimeouts.Load() == 0 {
		t.Error("no DNS timeout was injected")
	}
	if goIdleEnd > goIdleStart+soakGoroutineSlack {
		t.Errorf("goroutines idle: %d at the start, %d at the end: a leak", goIdleStart, goIdleEnd)
	}
	// A short run's second fifth may not have reached the steady state
	// yet (the heap still grows towards its GOGC target): a looser bound.
	frac, slack := int64(4), int64(16<<20)
	if loadFor < 2*time.Minute {
		frac, slack = 2, 32<<20
	}
	if early == 0 || late > early+early/frac+slack {
		t.Errorf("RSS under load: max %s early, %s late (more than 1/%d and %s more): a leak", mib(early), mib(late), frac, mib(slack))
	}
	if code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
	if len(d.panics) > 0 {
		t.Errorf("the daemon panicked: %q", d.panics)
	}
	if t.Failed() {
		t.Logf("the daemon's last log lines:\n%s", d.lastLines())
	}
}

// The soak's shape.
const (
	soakShort              = 12 * time.Second
	soakSessions           = 1000 // milter sessions open at once
	soakRate               = 400  // messages per second offered over all sessions
	soakPerConn            = 5    // messages per milter connection
	soakPolicyClients      = 8
	soakPolicyThink        = 20 * time.Millisecond // mean pause between one client's queries
	soakDNSTimeoutFraction = 0.05
	soakDNSHold            = 700 * time.Millisecond // > dns_timeout
	soakGoroutineSlack     = 5
)

// soakConfig is one of the two valid configurations: they differ in the
// authserv-id (which the test sees in the Authentication-Results header)
// and in the DATA ACL.
func soakConfig(dnsAddr, name string) string {
	data := "  warn    spf = fail\n          add_header = X-Soak: SPF fail\n  accept\n"
	if name == "b" {
		data = "  warn    dmarc_status = none\n          log_message = no DMARC policy\n  accept\n"
	}
	return fmt.Sprintf(`milter_listen = inet:127.0.0.1:0
policy_listen = inet:127.0.0.1:0
# 1000 MTA sessions and the test's probe session
milter_max_connections = 1100
dns_servers = %s
dns_timeout = 250ms
dns_retries = 1
dane_lookup_timeout = 5s
authserv_id = soak-%s.example
shutdown_timeout = 20s
acl_smtp_rcpt = acl_check_rcpt
acl_smtp_data = acl_check_data
begin acl
acl_check_rcpt:
  accept
acl_check_data:
%s`, dnsAddr, name, data)
}

// soakZone is the load generator's zone (the corpus' senders) and the
// policy next hops: 100 with a secure MX and a DANE-EE TLSA record
// (dane-only), 100 insecure (no policy), 20 like the first whose MX
// queries are never answered (TEMP).
func soakZone() (*dnstest.Zone, []policyQuery) {
	z := dnstest.NewZone().Add(loadZone(50)...)
	tlsa := strings.Repeat("3f", 32)
	var qs []policyQuery
	for i := range 100 {
		d := fmt.Sprintf("dane%d.pol.example", i)
		z.Add(d+". 300 IN MX 10 mx."+d+".",
			fmt.Sprintf("mx.%s. 300 IN A 192.0.2.%d", d, 1+i),
			"_25._tcp.mx."+d+". 300 IN TLSA 3 1 1 "+tlsa)
		qs = append(qs, policyQuery{d, wantDANEOnly})
		p := fmt.Sprintf("plain%d.ins.example", i)
		z.Add(p+". 300 IN MX 10 mx."+p+".", fmt.Sprintf("mx.%s. 300 IN A 198.51.100.%d", p, 1+i))
		qs = append(qs, policyQuery{p, wantNoPolicy})
	}
	for i := range 20 {
		// Were any of their answers taken, the policy would be dane-only.
		d := fmt.Sprintf("dead%d.pol.example", i)
		z.Add(d+". 300 IN MX 10 mx."+d+".",
			fmt.Sprintf("mx.%s. 300 IN A 192.0.2.%d", d, 201+i),
			"_25._tcp.mx."+d+". 300 IN TLSA 3 1 1 "+tlsa)
		qs = append(qs, policyQuery{d, wantTemp})
	}
	z.SetSecure("pol.example", true)
	return z, qs
}

// soakClient is go-milter's client as the load generator sets it up, on
// counted connections.
func soakClient(tgt target, tally *wireTally) *gomilter.Client {
	return gomilter.NewClientWithOptions(tgt.network, tgt.address, gomilter.ClientOptions{
		Dialer:       &countingDialer{inner: &dialer{d: net.Dialer{Timeout: 30 * time.Second}}, tally: tally},
		ReadTimeout:  30 * time.Second,
		WriteTimeout: 30 * time.Second,
		ActionMask:   0x3f,
		ProtocolMask: 0,
	})
}

// soakProbe sends one message on a new session and returns the
// authserv-id of the Authentication-Results header it got: the
// configuration in force when the session began.
func soakProbe(tgt target, corpus []*message, n int) (authservID string, eoms int) {
	tally := newWireTally()
	p := plan{target: tgt, corpus: corpus, perConn: 1, timeout: 30 * time.Second}
	wk := &worker{id: soakSessions + n, p: p, client: soakClient(tgt, tally)}
	for try := 0; try < 3; try++ {
		if err := wk.message(corpus[n%len(corpus)]); err != nil {
			wk.fail(err)
		}
		wk.close()
		tally.mu.Lock()
		ar, eoms := tally.lastAR, tally.eom
		tally.mu.Unlock()
		if ar != "" {
			id, _, _ := strings.Cut(strings.TrimSpace(ar), ";")
			return strings.TrimSpace(id), eoms
		}
	}
	return "(no Authentication-Results header)", tally.eom
}
