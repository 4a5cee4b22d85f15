package report

import (
	"sync"
)

// HistorySink is the history file at one path, shared by every Program
// that names it: records of concurrent sessions and of configurations
// loaded one after another go through one open file. The file is opened
// at the first record, so that compiling a configuration never creates
// it; it is closed when the last Program holding the sink releases it.
type HistorySink struct {
	path string
	mu   sync.Mutex
	refs int
	f    *HistoryFile
}

var sinks = struct {
	sync.Mutex
	m map[string]*HistorySink
}{m: map[string]*HistorySink{}}

// AcquireHistory returns the sink of the file at path, counting one more
// holder. A file already open is reopened: this is how SIGHUP follows a
// log rotation.
func AcquireHistory(path string) (*HistorySink, error) {
	sinks.Lock()
	s := sinks.m[path]
	if s == nil {
		s = &HistorySink{path: path}
		sinks.m[path] = s
	}
	sinks.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refs++
	if s.f != nil {
		return s, s.f.Reopen()
	}
	return s, nil
}

// Path returns the file's path.
func (s *HistorySink) Path() string { return s.path }

// Release drops one holder; the last one closes the file.
func (s *HistorySink) Release() error {
	sinks.Lock()
	defer sinks.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refs > 0 {
		s.refs--
	}
	if s.refs > 0 {
		return nil
	}
	delete(sinks.m, s.path)
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

// Append writes one record. A sink with no holder left (a message that
// ends after its configuration was replaced by one with another path)
// still writes it, opening and closing the file for that record.
func (s *HistorySink) Append(r *HistoryRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refs == 0 {
		f, err := OpenHistoryFile(s.path)
		if err != nil {
			return err
		}
		defer f.Close()
		return f.Append(r)
	}
	if s.f == nil {
		f, err := OpenHistoryFile(s.path)
		if err != nil {
			return err
		}
		s.f = f
	}
	return s.f.Append(r)
}
