package binunit

import (
	"math"
	"testing"
)

func TestCut(t *testing.T) {
	tests := []struct {
		in, units, rest string
		mult            int64
	}{
		{"10", "kmg", "10", 1},
		{"10k", "kmg", "10", 1 << 10},
		{"10K", "kmg", "10", 1 << 10},
		{"3M", "kmg", "3", 1 << 20},
		{"2g", "kmg", "2", 1 << 30},
		{"1t", "kmg", "1t", 1}, // t not allowed here
		{"1T", "kmgt", "1", 1 << 40},
		{"", "kmgt", "", 1},
		{"k", "kmgt", "", 1 << 10},
		{"5[", "kmgt", "5[", 1}, // '[' | 0x20 is '{', not a unit
	}
	for _, tt := range tests {
		rest, mult := Cut(tt.in, tt.units)
		if rest != tt.rest || mult != tt.mult {
			t.Errorf("Cut(%q, %q) = %q, %d; want %q, %d", tt.in, tt.units, rest, mult, tt.rest, tt.mult)
		}
		brest, bmult := Cut([]byte(tt.in), tt.units)
		if string(brest) != tt.rest || bmult != tt.mult {
			t.Errorf("Cut([]byte %q) = %q, %d", tt.in, brest, bmult)
		}
	}
}

func TestScale(t *testing.T) {
	if v, ok := Scale(8, 1<<30); !ok || v != 8<<30 {
		t.Errorf("Scale(8, 1G) = %d, %v", v, ok)
	}
	if _, ok := Scale(math.MaxInt64/1024+1, 1024); ok {
		t.Error("overflow not caught")
	}
	if _, ok := Scale(-1, 1); ok {
		t.Error("negative accepted")
	}
}
