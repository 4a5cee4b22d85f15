//go:build !unix

package dkim

import "time"

func processCPU() time.Duration { return 0 }
