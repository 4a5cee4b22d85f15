package suggest

import "testing"

func TestClosest(t *testing.T) {
	cands := []string{"authserv_id", "milter_listen", "policy_listen", "dns_servers", "dns_timeout"}
	tests := []struct{ name, want string }{
		{"authserv_idd", "authserv_id"},
		{"authservid", "authserv_id"},
		{"milter_lisetn", "milter_listen"},
		{"dns_timout", "dns_timeout"},
		{"completely_else", ""},
		{"x", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Closest(tt.name, cands); got != tt.want {
				t.Errorf("Closest(%q) = %q, want %q", tt.name, got, tt.want)
			}
		})
	}
}

func TestDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"abc", "abc", 0}, {"abc", "acb", 1}, {"kitten", "sitting", 3}, {"", "ab", 2}} {
		if got := Distance(tt.a, tt.b); got != tt.want {
			t.Errorf("Distance(%q,%q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
