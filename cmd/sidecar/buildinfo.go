package main

import (
	"fmt"
	"io"
	"runtime/debug"
)

// writeBuildInfo prints what runtime/debug.ReadBuildInfo knows of the
// binary: the module and its version, the VCS revision, and every build
// setting (compiler flags, GOOS, GOARCH, vcs.time, vcs.modified…).
func writeBuildInfo(w io.Writer) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		fmt.Fprintln(w, "build information: not available")
		return
	}
	fmt.Fprintf(w, "module:   %s %s\n", bi.Main.Path, bi.Main.Version)
	rev := "unknown (built without VCS stamping)"
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			rev = s.Value
		}
	}
	fmt.Fprintf(w, "revision: %s\n", rev)
	fmt.Fprintf(w, "go:       %s\n", bi.GoVersion)
	for _, s := range bi.Settings {
		fmt.Fprintf(w, "build:    %s=%s\n", s.Key, s.Value)
	}
}
