package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/mailsidecar/sidecar/acl"
	_ "github.com/mailsidecar/sidecar/checks" // the checks register into acl.Default
	"github.com/mailsidecar/sidecar/cmd/sidecar/daemon"
	"github.com/mailsidecar/sidecar/config"
	"github.com/mailsidecar/sidecar/milter"
)

// selfSidecar is an in-process sidecar: the embedded default configuration
// with dns_servers set to the fake DNS, built by the daemon's own code
// (resolver with its cache, checks, DKIM/ARC body hooks, A-R), serving the
// milter protocol on a loopback port.
type selfSidecar struct {
	addr string
	srv  *milter.Server
	done chan error
}

// startSelf starts it on listen ("127.0.0.1:0" for a free port), logging
// to logw.
func startSelf(listen, dnsAddr string, logw io.Writer) (*selfSidecar, error) {
	// Main options may come anywhere before "begin acl": the first line
	// points the resolver at the fake DNS.
	text := append([]byte("dns_servers = "+dnsAddr+"\n"), config.DefaultText...)
	cfg, err := config.Load(config.DefaultName, text)
	if err != nil {
		return nil, fmt.Errorf("embedded configuration: %w", err)
	}
	prog, err := acl.Compile(cfg, acl.Default)
	if err != nil {
		return nil, fmt.Errorf("embedded configuration: %w", err)
	}
	logger := daemon.NewLogger(logw, cfg.String("log_format"), cfg.String("log_level"))
	rt, err := daemon.Build(cfg, prog, logger)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	s := &selfSidecar{addr: l.Addr().String(), done: make(chan error, 1)}
	s.srv = milter.NewServer(func() *milter.Env { return rt.Milter })
	go func() { s.done <- s.srv.Serve(l) }()
	return s, nil
}

// Close stops the server, closing sessions still open after a second.
func (s *selfSidecar) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s.srv.Shutdown(ctx)
	return <-s.done
}
