// Command sidecar-load is a load generator for sidecar's milter: it drives
// a milter over loopback with go-milter's client, as Postfix's smtpd
// processes would, and prints messages per second and latency percentiles.
//
//	sidecar-load -addr inet:127.0.0.1:8894 -c 50 -d 10s
//	sidecar-load -self -c 50 -n 50000                 # in-process sidecar
//	sidecar-load -self -c 50 -d 10s -rate 1500        # fixed offered rate
//	sidecar-load -addr inet:127.0.0.1:8894 -dns 127.0.0.1:5399 \
//	    -pid $(pidof sidecar) -c 1000 -idle 5s -per-conn 10 -n 20000
//
// Each of -c workers holds one milter connection at a time: option
// negotiation, connect and HELO, then -per-conn messages (MAIL, RCPT,
// header fields, end of headers, body, end of message), then QUIT. The
// corpus is -corpus generated messages of about -size bytes from senders
// in domains of a fake zone, with SPF and DMARC records. -self runs sidecar
// in this process on the embedded default configuration with dns_servers
// pointing at the fake zone, served on loopback; -dns serves the same zone
// for a sidecar run separately (set its dns_servers to that address). A
// warm-up pass (-warmup messages, not measured) fills the DNS cache.
//
// Latency is the time from the start of a message (with -rate: from the
// time it was scheduled) to the milter's reply at end of message; a message
// that opens a connection includes the connect and HELO stages. -idle
// opens every connection first and holds it idle before the run (memory
// per session); -pid samples that process's VmRSS (with -self: this
// process's).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"syscall"
	"time"
)

// generatorGCPercent is the generator's garbage collector setting unless
// GOGC is set or sidecar runs in the process (-self): go-milter's client allocates a 4 KiB buffer per packet it
// writes, and collecting them often takes CPU from the milter under test
// on a shared machine. The generator's own memory does not matter.
const generatorGCPercent = 800

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(cli(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// cli runs the command; the exit code is 0 when every message got through
// without protocol error, 1 when some did not, 2 on a usage error.
func cli(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sidecar-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		addr     = fs.String("addr", "inet:127.0.0.1:8894", "milter address: inet:HOST:PORT, inet:PORT@HOST or unix:/PATH")
		conc     = fs.Int("c", 10, "concurrent milter connections")
		count    = fs.Int("n", 0, "messages to send (default 10000 when -d is not given)")
		duration = fs.Duration("d", 0, "run for this long instead of -n messages")
		rate     = fs.Float64("rate", 0, "fixed offered rate in messages per second over all connections (0: as fast as possible)")
		size     = fs.Int("size", 10240, "message size in bytes (header block and body)")
		corpusN  = fs.Int("corpus", 200, "distinct messages in the corpus")
		domains  = fs.Int("domains", 50, "sender domains in the fake zone")
		rcpts    = fs.Int("rcpts", 1, "recipients per message")
		perConn  = fs.Int("per-conn", 1, "messages per milter connection (Postfix: one connection per SMTP session); 0: unlimited")
		pipeline = fs.Bool("pipeline", false, "write the packets that get no reply together with the next one (fewer writes than an MTA makes)")
		idle     = fs.Duration("idle", 0, "open all -c connections first and hold them idle this long before sending")
		self     = fs.Bool("self", false, "run sidecar in this process on the embedded default configuration and a fake DNS zone")
		selfLog  = fs.String("self-log", "", "with -self: write sidecar's log to this file (default: discarded)")
		dnsAddr  = fs.String("dns", "", "serve the fake zone on this address (UDP and TCP) for a separate sidecar's dns_servers")
		pid      = fs.Int("pid", 0, "sample this process's VmRSS (with -self: this process)")
		warmup   = fs.Int("warmup", -1, "unmeasured messages sent first to warm the DNS cache (default: the corpus size)")
		timeout  = fs.Duration("timeout", 10*time.Second, "timeout of each milter read and write")
		seed     = fs.Uint64("seed", 1, "corpus seed")
		cpuProf  = fs.String("cpuprofile", "", "write a CPU profile of the measured run to this file")
		dkimSign = fs.Bool("dkim", false, "sign every corpus message with an RSA-2048 DKIM signature (relaxed/relaxed, d= the sender's domain), its key in the fake zone: needs -self or -dns")
		null     = fs.String("null-milter", "", "serve a milter that checks nothing (go-milter's server) on this address until interrupted, as the harness's baseline; nothing is sent")
	)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: sidecar-load [flags]\n\nDrives a milter with generated mail and prints messages/s and latency percentiles.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "sidecar-load: "+format+"\n", a...)
		return 2
	}
	switch {
	case fs.NArg() > 0:
		return usage("unexpected argument %q", fs.Arg(0))
	case *conc < 1:
		return usage("-c must be at least 1")
	case *count < 0 || *duration < 0 || *rate < 0 || *perConn < 0:
		return usage("-n, -d, -rate and -per-conn cannot be negative")
	case *size < 1024:
		return usage("-size must be at least 1024 bytes")
	case *corpusN < 1 || *domains < 1 || *rcpts < 1:
		return usage("-corpus, -domains and -rcpts must be at least 1")
	}
	if !*self && os.Getenv("GOGC") == "" {
		defer debug.SetGCPercent(debug.SetGCPercent(generatorGCPercent))
	}
	if *null != "" {
		t, err := parseAddr(*null)
		if err != nil {
			return usage("%v", err)
		}
		fmt.Fprintf(stdout, "null_milter: %s %s\n", t.network, t.address)
		if err := serveNull(ctx, t); err != nil {
			fmt.Fprintf(stderr, "sidecar-load: null milter: %v\n", err)
			return 1
		}
		return 0
	}
	if *count == 0 && *duration == 0 {
		*count = 10000
	}
	if *warmup < 0 {
		*warmup = *corpusN
	}
	addrSet := false
	fs.Visit(func(f *flag.Flag) { addrSet = addrSet || f.Name == "addr" })

	corpus := buildCorpus(*seed, *corpusN, *size, *domains, *rcpts)
	zone := loadZone(*domains)
	if *dkimSign {
		if !*self && *dnsAddr == "" {
			return usage("-dkim needs -self or -dns: the key is published in the fake zone")
		}
		key, err := newDKIMKey()
		if err == nil {
			err = signCorpus(corpus, key)
		}
		var recs []string
		if err == nil {
			recs, err = dkimRecords(*domains, key)
		}
		if err != nil {
			fmt.Fprintf(stderr, "sidecar-load: DKIM: %v\n", err)
			return 1
		}
		zone = append(zone, recs...)
	}
	var dns *fakeDNS
	if *self || *dnsAddr != "" {
		listen := *dnsAddr
		if listen == "" {
			listen = "127.0.0.1:0"
		}
		var err error
		if dns, err = startFakeDNS(listen, zone); err != nil {
			fmt.Fprintf(stderr, "sidecar-load: fake DNS: %v\n", err)
			return 1
		}
		defer dns.Close()
		fmt.Fprintf(stdout, "fake_dns: %s\n", dns.addr)
	}
	tgt, err := parseAddr(*addr)
	if err != nil {
		return usage("%v", err)
	}
	rssPid, rssNote := *pid, ""
	if *self {
		listen := "127.0.0.1:0"
		if addrSet {
			if tgt.network != "tcp" {
				return usage("-self listens on TCP only")
			}
			listen = tgt.address
		}
		logw := io.Discard
		if *selfLog != "" {
			f, err := os.OpenFile(*selfLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			if err != nil {
				fmt.Fprintf(stderr, "sidecar-load: %v\n", err)
				return 1
			}
			defer f.Close()
			logw = f
		}
		s, err := startSelf(listen, dns.addr, logw)
		if err != nil {
			fmt.Fprintf(stderr, "sidecar-load: in-process sidecar: %v\n", err)
			return 1
		}
		defer s.Close()
		tgt = target{"tcp", s.addr}
		if rssPid == 0 {
			rssPid, rssNote = os.Getpid(), ", in-process sidecar and load generator together"
		}
	}

	p := plan{target: tgt, corpus: corpus, conc: *conc, count: *count, duration: *duration, rate: *rate,
		perConn: *perConn, pipeline: *pipeline, idle: *idle, timeout: *timeout, dkim: *dkimSign}
	if *warmup > 0 {
		w := p
		w.conc, w.count, w.duration, w.rate, w.idle = min(p.conc, *warmup), *warmup, 0, 0, 0
		o := run(ctx, w)
		if o.errors > 0 {
			fmt.Fprintf(stderr, "sidecar-load: warm-up: %d of %d messages failed: %v\n", o.errors, *warmup, o.firstErr)
			return 1
		}
		fmt.Fprintf(stdout, "warmup: %d messages\n", len(o.latencies))
	}
	var rss *rssSampler
	if rssPid != 0 {
		if rss, err = startRSS(rssPid, rssNote); err != nil {
			fmt.Fprintf(stderr, "sidecar-load: -pid: %v\n", err)
			return 1
		}
		p.onIdle = rss.mark
	}
	if *cpuProf != "" {
		f, err := os.Create(*cpuProf)
		if err != nil {
			fmt.Fprintf(stderr, "sidecar-load: %v\n", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "sidecar-load: %v\n", err)
			return 1
		}
	}
	o := run(ctx, p)
	if *cpuProf != "" {
		pprof.StopCPUProfile()
	}
	if rss != nil {
		rss.finish()
	}
	writeReport(stdout, p, o, rss)
	if o.errors > 0 || ctx.Err() != nil {
		return 1
	}
	return 0
}
