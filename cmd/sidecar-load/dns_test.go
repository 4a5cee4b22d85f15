package main

import (
	"context"
	"strings"
	"testing"

	"github.com/mailsidecar/sidecar/resolver"
)

func TestFakeDNSAnswersTheCorpusZone(t *testing.T) {
	f, err := startFakeDNS("127.0.0.1:0", loadZone(2))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := resolver.New(resolver.Options{Servers: []string{f.addr}})
	if err != nil {
		t.Fatal(err)
	}
	ans, err := r.Query(context.Background(), senderDomain(1), resolver.TypeTXT)
	if err != nil || len(ans.Records) != 1 || !strings.HasPrefix(strings.Join(ans.Records[0].TXT, ""), "v=spf1 ") {
		t.Fatalf("TXT %s: %+v %v", senderDomain(1), ans, err)
	}
	ans, err = r.Query(context.Background(), "nosuch."+senderDomain(1), resolver.TypeTXT)
	if err != nil || !ans.NXDomain() {
		t.Fatalf("want NXDOMAIN, got %+v %v", ans, err)
	}
}
