// Package xmlschema validates DMARC aggregate reports in tests with
// xmllint --schema (Debian libxml2-utils) against the schemas in
// ../shared/testdata/dmarc/: RFC 9990's, and RFC 7489's (Appendix C,
// rfc7489/rua-schema.xsd). Without xmllint the test is skipped with the
// reason, or fails under CI=true.
package xmlschema

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/mailsidecar/sidecar/internal/testkit/shareddata"
)

// The schemas' paths under the shared test data.
const (
	RFC9990 = "dmarc/dmarc-xml-0.2.xsd"
	RFC7489 = "dmarc/rfc7489/rua-schema.xsd"
)

// rfc7489Target is the target namespace RFC 7489's schema declares.
const rfc7489Target = ` targetNamespace="http://dmarc.org/dmarc-xml/0.1"`

// Validate checks a report (gzip-compressed or plain XML) against the
// RFC 9990 schema and fails the test with xmllint's words.
func Validate(t testing.TB, doc []byte) {
	t.Helper()
	xmllint := need(t)
	validate(t, xmllint, RFC9990, shareddata.Path(t, RFC9990), doc)
}

// ValidateRFC7489 checks a report against RFC 7489's schema. That
// schema, as published, does not compile: it declares a target namespace
// but refers to its own types unqualified, which xmllint (rightly)
// resolves to no namespace. The one reading that compiles without
// changing a declaration is the schema without its targetNamespace,
// which describes the reports as RFC 7489 receivers write them, a root
// <feedback> in no namespace. The schema is read from the shared data
// and that one attribute dropped in a copy; the test fails if the
// attribute is not there to drop.
func ValidateRFC7489(t testing.TB, doc []byte) {
	t.Helper()
	xmllint := need(t)
	xsd, err := os.ReadFile(shareddata.Path(t, RFC7489))
	if err != nil {
		t.Fatal(err)
	}
	fixed := bytes.Replace(xsd, []byte(rfc7489Target), nil, 1)
	if bytes.Equal(fixed, xsd) {
		t.Fatalf("%s has no%s: not the schema this test reads", RFC7489, rfc7489Target)
	}
	path := filepath.Join(t.TempDir(), "rua-schema.xsd")
	if err := os.WriteFile(path, fixed, 0o600); err != nil {
		t.Fatal(err)
	}
	validate(t, xmllint, RFC7489, path, doc)
}

// need returns xmllint's path, or skips (fails under CI=true).
func need(t testing.TB) string {
	t.Helper()
	xmllint, err := exec.LookPath("xmllint")
	if err != nil {
		msg := "xmllint not found: install the Debian package libxml2-utils (scripts/debian-packages.txt)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return xmllint
}

func validate(t testing.TB, xmllint, name, schema string, doc []byte) {
	t.Helper()
	if len(doc) > 2 && doc[0] == 0x1f && doc[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(doc))
		if err != nil {
			t.Fatal(err)
		}
		if doc, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "report.xml")
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(xmllint, "--noout", "--schema", schema, path).CombinedOutput(); err != nil {
		t.Fatalf("xmllint --schema %s: %v\n%s\n%s", name, err, out, doc)
	}
}
