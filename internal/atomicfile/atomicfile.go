// Package atomicfile writes files whole or not at all: readers see the
// old content or the new, never part of it.
package atomicfile

import (
	"os"
	"path/filepath"
)

// WriteFile writes data to a new file (mode 0600) beside path, named
// with tmpPattern as os.CreateTemp takes it, syncs it and renames it over
// path. On failure the new file is removed and path is left alone.
func WriteFile(path, tmpPattern string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), tmpPattern)
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}
