package main

import (
	"os"
	"testing"

	"github.com/mailsidecar/sidecar/arc"
)

func arcTestFixture(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("../../arc/testdata/sealed-ed25519.eml")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDescribeARC(t *testing.T) {
	c := arcCheck(t, arcTestZone(t), arcTestFixture(t))
	got := DescribeARC(c)
	want := `arc=pass (2 instances, oldest pass i=1)
  i=1 ARC-Seal d=lists.example s=arc1 cv=none: verified
      ARC-Message-Signature d=lists.example s=arc1: verified
      ARC-Authentication-Results: lists.example; arc=none; spf=pass smtp.mailfrom=origin.example
  i=2 ARC-Seal d=forward.example s=arc2 cv=pass: verified
      ARC-Message-Signature d=forward.example s=arc2: verified
      ARC-Authentication-Results: forward.example; arc=pass; spf=pass smtp.mailfrom=origin.example
`
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if got := DescribeARC(&arc.Chain{State: arc.None}); got != "arc=none\n" {
		t.Errorf("none: %q", got)
	}
}
