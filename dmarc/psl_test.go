package dmarc

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mailsidecar/sidecar/internal/testkit/shareddata"
)

// sharedTestdata returns the path of a file under ../shared/testdata
// (beside the repository). When it is missing the test is skipped, or
// fails under CI=true.
func sharedTestdata(t testing.TB, rel string) string { return shareddata.Path(t, rel) }

type pslVector struct {
	input, want string // want "" for null
}

var vectorRE = regexp.MustCompile(`^checkPublicSuffix\((null|'[^']*'), (null|'[^']*')\);`)

// pslVectors reads the publicsuffix.org test vectors; null input is skipped.
func pslVectors(t *testing.T) []pslVector {
	data, err := os.ReadFile(sharedTestdata(t, "psl/test_psl.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var out []pslVector
	for _, line := range strings.Split(string(data), "\n") {
		m := vectorRE.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil || m[1] == "null" {
			continue
		}
		v := pslVector{input: strings.Trim(m[1], "'")}
		if m[2] != "null" {
			v.want = strings.Trim(m[2], "'")
		}
		out = append(out, v)
	}
	if len(out) < 70 {
		t.Fatalf("only %d vectors read", len(out))
	}
	return out
}

func TestPSLVectorsFile(t *testing.T) {
	vectors := pslVectors(t)
	p, err := LoadPSL(sharedTestdata(t, "psl/public_suffix_list.dat"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Len() < 5000 {
		t.Errorf("only %d rules", p.Len())
	}
	for _, v := range vectors {
		if got := p.OrgDomain(v.input); got != v.want {
			t.Errorf("OrgDomain(%q) = %q, want %q", v.input, got, v.want)
		}
	}
	t.Logf("%d vectors", len(vectors))
}

// TestPSLVectorsEmbedded runs the vectors on the compiled-in list. Its
// snapshot is not the vectors' own vintage; the vectors test rules that
// have been stable for years.
func TestPSLVectorsEmbedded(t *testing.T) {
	p := EmbeddedPSL()
	for _, v := range pslVectors(t) {
		if got := p.OrgDomain(v.input); got != v.want {
			t.Errorf("OrgDomain(%q) = %q, want %q", v.input, got, v.want)
		}
	}
}

func TestParsePSL(t *testing.T) {
	p, err := ParsePSL(strings.NewReader(`// comment
com
*.ck
!www.ck
公司.cn  trailing words ignored
	co.uk
`))
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		"example.com": "example.com", "a.b.example.com": "example.com", "com": "",
		"x.test.ck": "x.test.ck", "test.ck": "", "www.ck": "www.ck", "a.www.ck": "www.ck",
		"a.食狮.公司.cn": "食狮.公司.cn", "x.xn--55qx5d.cn": "x.xn--55qx5d.cn",
		"a.b.co.uk": "b.co.uk", "unlisted": "", "a.unlisted": "a.unlisted",
		"": "", ".": "", "a..com": "",
	} {
		if got := p.OrgDomain(in); got != want {
			t.Errorf("OrgDomain(%q) = %q, want %q", in, got, want)
		}
	}
	if got := p.PublicSuffix("a.b.co.uk"); got != "co.uk" {
		t.Errorf("PublicSuffix = %q", got)
	}
	if _, err := ParsePSL(strings.NewReader("// only comments\n\n")); !errors.Is(err, ErrEmptyPSL) {
		t.Errorf("empty list: %v", err)
	}
	if _, err := ParsePSL(strings.NewReader("a.*.b\n")); err == nil {
		t.Error("inner wildcard accepted")
	}
	if _, err := LoadPSL(filepath.Join(t.TempDir(), "missing.dat")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}
