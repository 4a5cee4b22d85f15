//go:build !unix

package checks

import "time"

// processCPU is not measured here: the benchmark reports no CPU time.
func processCPU() time.Duration { return 0 }
