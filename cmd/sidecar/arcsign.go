package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/mailsidecar/sidecar/arc"
	"github.com/mailsidecar/sidecar/config"
	"github.com/mailsidecar/sidecar/resolver"
)

const arcSignDoc = `sidecar arc-sign -domain D -selector S -key FILE [flags] MESSAGE

Seals MESSAGE (a file, or - for standard input) with a new ARC Set (RFC 8617),
as a forwarder does: validates its ARC chain (the sealers' keys come from DNS),
then prints the message with ARC-Seal, ARC-Message-Signature and
ARC-Authentication-Results added on top; the message itself is unchanged.
The new seal's cv= is the validation result. The ARC-Authentication-Results
copies the message's Authentication-Results fields of -authserv-id and adds
the arc result when they have none.
No set is added, and the exit status is 1, when the chain's newest seal already
says cv=fail, when it has 50 sets, or when a key lookup failed temporarily.
Exit status 0 when sealed, 2 for usage errors.`

func cmdARCSign(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("arc-sign", arcSignDoc, stderr)
	domain := fs.String("domain", "", "the sealing `domain` (d=) (required)")
	selector := fs.String("selector", "", "the key's `selector` (s=): its public key is at SELECTOR._domainkey.DOMAIN (required)")
	keyPath := fs.String("key", "", "the private key `file`: PEM RSA (PKCS #1 or #8) or Ed25519 (PKCS #8, or a base64 seed) (required)")
	authserv := fs.String("authserv-id", "", "this host's authserv-`id` in the ARC-Authentication-Results (default: the system host name)")
	headers := fs.String("headers", "", "header field `names` the ARC-Message-Signature covers, colon-separated, \"+name\" to oversign (default: the default of arc_sign_headers)")
	ipText := fs.String("ip", "", "the `address` of the client the message came from, for smtp.remote-ip in the arc result")
	dnsAddr := fs.String("dns", "", "the DNS resolver to ask, `ADDR[:PORT]` (default: /etc/resolv.conf)")
	timeout := fs.Duration("timeout", 20*time.Second, "longest time the key lookups may take")
	verbose := fs.Bool("v", false, "describe the chain found, and the set added, on standard error")
	if code, done := parse(fs, args); done {
		return code
	}
	usageErr := usageError(stderr, "arc-sign", "sidecar arc-sign -domain D -selector S -key FILE [-authserv-id ID] [-dns ADDR:PORT] MESSAGE")
	switch {
	case *domain == "":
		return usageErr("-domain is required")
	case *selector == "":
		return usageErr("-selector is required")
	case *keyPath == "":
		return usageErr("-key is required")
	case fs.NArg() != 1:
		return usageErr("give one MESSAGE file (or - for standard input)")
	case *timeout <= 0:
		return usageErr("-timeout must be positive")
	}
	var ip netip.Addr
	if *ipText != "" {
		var ok bool
		if ip, ok = parseClientIP(*ipText); !ok {
			return usageErr("-ip %q is not an IP address", *ipText)
		}
	}
	var servers []string
	if *dnsAddr != "" {
		a, err := config.ParseServer(*dnsAddr)
		if err != nil {
			return usageErr("-dns: %v", err)
		}
		servers = []string{a}
	}
	keyData, err := os.ReadFile(*keyPath)
	if err != nil {
		fmt.Fprintf(stderr, "sidecar arc-sign: %v\n", err)
		return 2
	}
	key, err := arc.ParsePrivateKey(keyData)
	if err != nil {
		fmt.Fprintf(stderr, "sidecar arc-sign: %s: %v\n", *keyPath, err)
		return 2
	}
	signer := &arc.Signer{Domain: *domain, Selector: *selector, Key: key}
	if *headers != "" {
		for _, it := range config.SplitList(config.NewValue(*headers, config.Pos{})) {
			if it.Text != "" {
				signer.Headers = append(signer.Headers, it.Text)
			}
		}
	}
	if err := signer.Check(); err != nil {
		fmt.Fprintf(stderr, "sidecar arc-sign: %v\n", err)
		return 2
	}
	msg, err := readARCMessage(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "sidecar arc-sign: %v\n", err)
		return 2
	}
	res, err := resolver.New(resolver.Options{Servers: servers})
	if err != nil {
		fmt.Fprintf(stderr, "sidecar arc-sign: DNS resolver: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	chain, err := (&arc.Validator{DNS: res}).Validate(ctx, bytes.NewReader(msg))
	if err != nil {
		fmt.Fprintf(stderr, "sidecar arc-sign: %v\n", err)
		return 1
	}
	if *verbose {
		fmt.Fprint(stderr, DescribeARC(chain))
	}
	id := *authserv
	if id == "" {
		id, _ = os.Hostname()
	}
	fields, err := signer.Seal(msg, chain, arcSignPayload(msg, id, chain, ip))
	if err != nil {
		switch {
		case errors.Is(err, arc.ErrChainFailed), errors.Is(err, arc.ErrTooManyInstances):
			fmt.Fprintf(stderr, "sidecar arc-sign: not sealed: %v\n", err)
		case chain.Temp:
			fmt.Fprintf(stderr, "sidecar arc-sign: not sealed, try again later: %s\n", chain.Reason)
		default:
			fmt.Fprintf(stderr, "sidecar arc-sign: %v\n", err)
		}
		return 1
	}
	if *verbose {
		fmt.Fprintf(stderr, "added ARC Set i=%d cv=%s d=%s s=%s\n", len(chain.Instances)+1, chain.State, signer.Domain, signer.Selector)
	}
	eol := "\r\n"
	if i := bytes.IndexByte(msg, '\n'); i >= 0 && (i == 0 || msg[i-1] != '\r') {
		eol = "\n" // keep the message's own line breaks
	}
	for _, f := range fields {
		io.WriteString(stdout, strings.ReplaceAll(f, "\r\n", eol)+eol)
	}
	stdout.Write(msg)
	return 0
}

// arcSignPayload is the payload of the new ARC-Authentication-Results: the
// results of the message's Authentication-Results of id, with the arc
// result of this validation added when they have none.
func arcSignPayload(msg []byte, id string, chain *arc.Chain, ip netip.Addr) string {
	remote := ""
	if ip.IsValid() {
		remote = ip.Unmap().String()
	}
	payload, ok := arc.AuthResultsFor(msg, id)
	if !ok || strings.HasSuffix(payload, "; none") {
		return id + "; " + chain.AuthResult(remote)
	}
	for _, r := range strings.Split(payload, ";")[1:] {
		if m, _, _ := strings.Cut(strings.TrimSpace(r), "="); strings.EqualFold(strings.TrimSpace(m), "arc") {
			return payload
		}
	}
	return payload + "; " + chain.AuthResult(remote)
}

// readARCMessage reads a message file, or standard input for "-".
func readARCMessage(path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(path)
}
