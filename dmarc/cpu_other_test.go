//go:build !unix

package dmarc

import "time"

func processCPU() time.Duration { return 0 }
