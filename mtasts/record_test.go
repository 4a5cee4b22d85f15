package mtasts

import (
	"errors"
	"testing"
)

func TestParseRecord(t *testing.T) {
	tests := []struct {
		name, txt, id string
		err           error
	}{
		{"plain", "v=STSv1; id=20160831085700Z", "20160831085700Z", nil},
		{"no spaces", "v=STSv1;id=abc", "abc", nil},
		{"trailing separator", "v=STSv1; id=abc;", "abc", nil},
		{"tabs around separators", "v=STSv1\t;\tid=abc\t", "abc", nil},
		{"extension field", "v=STSv1; id=abc; ext-1=x:y", "abc", nil},
		{"first id counts", "v=STSv1; id=one; id=two", "one", nil},
		{"32 characters", "v=STSv1; id=" + "a1234567890123456789012345678901", "a1234567890123456789012345678901", nil},
		{"33 characters", "v=STSv1; id=" + "a12345678901234567890123456789012", "", ErrRecord},
		{"id not alphanumeric", "v=STSv1; id=ab-c", "", ErrRecord},
		{"empty id", "v=STSv1; id=", "", ErrRecord},
		{"no id", "v=STSv1; foo=bar", "", ErrRecord},
		{"version not first", "id=abc; v=STSv1", "", ErrRecord},
		{"wrong version", "v=STSv2; id=abc", "", ErrRecord},
		{"leading space", " v=STSv1; id=abc", "", ErrRecord},
		{"empty field", "v=STSv1;; id=abc", "", ErrRecord},
		{"field without =", "v=STSv1; id", "", ErrRecord},
		{"space in a value", "v=STSv1; id=abc; x=a b", "", ErrRecord},
		{"version only", "v=STSv1", "", ErrRecord},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseRecord(tt.txt)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("ParseRecord(%q) = %+v, %v; want %v", tt.txt, r, err, tt.err)
				}
				return
			}
			if err != nil || r.ID != tt.id {
				t.Fatalf("ParseRecord(%q) = %+v, %v; want id %q", tt.txt, r, err, tt.id)
			}
		})
	}
}

func TestSelectRecord(t *testing.T) {
	tests := []struct {
		name string
		txts []string
		id   string
		err  error
	}{
		{"one among others", []string{"v=spf1 -all", "v=STSv1; id=a1"}, "a1", nil},
		{"none", []string{"v=spf1 -all"}, "", ErrNoRecord},
		{"nothing", nil, "", ErrNoRecord},
		{"two records: no policy", []string{"v=STSv1; id=a1", "v=STSv1; id=a2"}, "", ErrRecord},
		{"one invalid", []string{"v=STSv1; id=!"}, "", ErrRecord},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := SelectRecord(tt.txts)
			if !errors.Is(err, tt.err) || r.ID != tt.id {
				t.Fatalf("SelectRecord(%q) = %+v, %v; want %q, %v", tt.txts, r, err, tt.id, tt.err)
			}
		})
	}
}
