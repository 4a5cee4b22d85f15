package authres

import "testing"

func TestRendering(t *testing.T) {
	tests := []struct{ name, got, want string }{
		{"token", Value("mx.example.net"), "mx.example.net"},
		{"value quoted", Value("a b"), `"a b"`},
		{"empty value", Value(""), `""`},
		{"pvalue address", PValue("user@example.org"), "user@example.org"},
		{"pvalue at-domain", PValue("@example.org"), "@example.org"},
		{"pvalue bad address", PValue("a..b@example.org"), `"a..b@example.org"`},
		{"quote escapes", Quote("say \"hi\"\\\r\n"), `"say \"hi\"\\  "`},
		{"comment escapes", Comment("p=(x)\\\n"), `(p=\(x\)\\ )`},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.name, tt.got, tt.want)
		}
	}
	if Token("a=b") || Token("") || !Token("pass") {
		t.Error("Token")
	}
}

func FuzzQuote(f *testing.F) {
	f.Add("a\"b\\c\r\n(d)")
	f.Fuzz(func(t *testing.T, s string) {
		for _, out := range []string{Quote(s), Comment(s), PValue(s)} {
			for i := 0; i < len(out); i++ {
				if c := out[i]; c == '\r' || c == '\n' {
					t.Fatalf("%q renders with a line break: %q", s, out)
				}
			}
		}
	})
}
