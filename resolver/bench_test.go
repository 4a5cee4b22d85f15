package resolver_test

import (
	"context"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/resolver"
)

func cachedResolver(b *testing.B) *resolver.Resolver {
	z := dnstest.NewZone().Add("host.example.com. 3600 IN A 192.0.2.1")
	s := dnstest.NewServer(b, z)
	r, err := resolver.New(resolver.Options{Servers: []string{s.Addr()}, Timeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := r.Query(context.Background(), "host.example.com", resolver.TypeA); err != nil {
		b.Fatal(err)
	}
	return r
}

func BenchmarkQueryCached(b *testing.B) {
	r := cachedResolver(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Query(ctx, "host.example.com", resolver.TypeA); err != nil {
			b.Fatal(err)
		}
	}
	if st := r.Stats(); st.Queries != 1 {
		b.Fatalf("%d queries sent", st.Queries)
	}
}

func BenchmarkQueryParallelCached(b *testing.B) {
	r := cachedResolver(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := r.Query(ctx, "host.example.com", resolver.TypeA); err != nil {
				b.Error(err)
				return
			}
		}
	})
	if st := r.Stats(); st.Queries != 1 {
		b.Fatalf("%d queries sent", st.Queries)
	}
}

// BenchmarkQueryUncached measures a full round trip over loopback UDP.
func BenchmarkQueryUncached(b *testing.B) {
	z := dnstest.NewZone().Add("host.example.com. 3600 IN A 192.0.2.1")
	s := dnstest.NewServer(b, z)
	r, err := resolver.New(resolver.Options{Servers: []string{s.Addr()}, CacheSize: -1})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Query(ctx, "host.example.com", resolver.TypeA); err != nil {
			b.Fatal(err)
		}
	}
}
