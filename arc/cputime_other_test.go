//go:build !unix

package arc

import "time"

func processCPU() time.Duration { return 0 }
