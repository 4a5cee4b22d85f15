package tlsrpt

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/mailsidecar/sidecar/internal/atomicfile"
)

// State remembers what has been done with each report, so that a run
// over the same period sends nothing twice: a report's record lookup that
// found no destination, and each destination it was sent to or that
// refused it for good. Temporary failures are not remembered: the next
// run tries again. It is kept in a JSON file, written whole after each
// change (a new file renamed over the old one).
type State struct {
	path string
	Done map[string]StateEntry `json:"done"` // by report file name and rua
}

// StateEntry is one thing done.
type StateEntry struct {
	Time   time.Time `json:"time"`
	Status Status    `json:"status"`
	Detail string    `json:"detail,omitempty"`
}

// Limits of the state file: its size when read, and how long an entry
// is kept (reports older than that are never made again by a cron run).
const (
	MaxStateFile  = 16 << 20
	StateLifetime = 90 * 24 * time.Hour
)

// LoadState reads the state file at path; a missing file is an empty
// state. Entries older than StateLifetime (before now) are dropped.
func LoadState(path string, now time.Time) (*State, error) {
	st := &State{path: path, Done: map[string]StateEntry{}}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxStateFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxStateFile {
		return nil, fmt.Errorf("%s: larger than %d octets", path, MaxStateFile)
	}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if st.Done == nil {
		st.Done = map[string]StateEntry{}
	}
	for k, e := range st.Done {
		if now.Sub(e.Time) > StateLifetime {
			delete(st.Done, k)
		}
	}
	return st, nil
}

func stateKey(report, dest string) string { return report + " " + dest }

// Lookup returns what was done for a report and destination ("" for
// the record lookup).
func (st *State) Lookup(report, dest string) (StateEntry, bool) {
	e, ok := st.Done[stateKey(report, dest)]
	return e, ok
}

// Record remembers e and writes the file.
func (st *State) Record(report, dest string, e StateEntry) error {
	st.Done[stateKey(report, dest)] = e
	b, err := json.MarshalIndent(st, "", " ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(st.path, filepath.Base(st.path)+".tmp*", append(b, '\n'))
}
