package resolver_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mailsidecar/sidecar/resolver"
)

func TestServersFromResolvConf(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		want    []string
		wantErr bool
	}{
		{
			name: "typical",
			text: "# generated\nsearch example.com\nnameserver 127.0.0.53\noptions edns0 trust-ad\n",
			want: []string{"127.0.0.53"},
		},
		{
			name: "several, IPv6, comments, spacing",
			text: "nameserver 192.0.2.1 # primary\n\tnameserver   2001:db8::53\n; nameserver 192.0.2.9\n#nameserver 192.0.2.8\nnameserver ::1\n",
			want: []string{"192.0.2.1", "2001:db8::53", "::1"},
		},
		{name: "nameserver without address", text: "nameserver\n", wantErr: true},
		{name: "no nameserver", text: "search example.com\noptions ndots:2\n", wantErr: true},
		{name: "empty", text: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "resolv.conf")
			if err := os.WriteFile(path, []byte(tt.text), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := resolver.ServersFromResolvConf(path)
			if (err != nil) != tt.wantErr || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, %v; want %q, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		if _, err := resolver.ServersFromResolvConf(filepath.Join(t.TempDir(), "nope")); err == nil {
			t.Error("no error")
		}
	})
}

func TestNewServers(t *testing.T) {
	tests := []struct {
		name    string
		servers []string
		want    []string
		wantErr string
	}{
		{name: "IPv4", servers: []string{"192.0.2.1"}, want: []string{"192.0.2.1:53"}},
		{name: "IPv4 and port", servers: []string{"127.0.0.1:5353"}, want: []string{"127.0.0.1:5353"}},
		{name: "IPv6", servers: []string{"2001:db8::1"}, want: []string{"[2001:db8::1]:53"}},
		{name: "IPv6 and port", servers: []string{"[::1]:5353"}, want: []string{"[::1]:5353"}},
		{name: "IPv4-mapped", servers: []string{"::ffff:192.0.2.1"}, want: []string{"192.0.2.1:53"}},
		{name: "order kept", servers: []string{"192.0.2.2", "192.0.2.1"}, want: []string{"192.0.2.2:53", "192.0.2.1:53"}},
		{name: "hostname", servers: []string{"dns.example.com"}, wantErr: "not an IP address"},
		{name: "hostname and port", servers: []string{"localhost:53"}, wantErr: "not an IP address"},
		{name: "bad port", servers: []string{"192.0.2.1:dns"}, wantErr: "bad port"},
		{name: "port 0", servers: []string{"192.0.2.1:0"}, wantErr: "bad port"},
		{name: "port too large", servers: []string{"192.0.2.1:65536"}, wantErr: "bad port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := resolver.New(resolver.Options{Servers: tt.servers})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Servers(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Servers() = %q, want %q", got, tt.want)
			}
		})
	}
}
