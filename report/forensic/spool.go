package forensic

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailsidecar/sidecar/internal/atomicfile"
)

// DefaultMaxEntries bounds a spool: a report arriving when it holds that
// many is dropped (ErrSpoolFull).
const DefaultMaxEntries = 10000

// MaxEntrySize bounds one spool file as ReadEntry reads it.
const MaxEntrySize = 4 << 20

// Spool errors.
var (
	ErrSpoolFull = errors.New("failure report spool full")
	ErrRateLimit = errors.New("failure report rate limit reached")
)

// Entry is one spooled report and how its delivery stands.
type Entry struct {
	Report Report `json:"report"`
	// RUF are the destinations (ruf URIs as published) still to be
	// served.
	RUF      []string  `json:"ruf"`
	Created  time.Time `json:"created"`
	Attempts int       `json:"attempts"`
	// Next is when the next attempt may be made; zero: at once.
	Next time.Time `json:"next"`
	// ID is the file's name in the spool (not stored in the file).
	ID string `json:"-"`
}

// Spool is a directory of failure reports, one file each, written whole
// or not at all (a temporary file renamed into place): the daemon's
// message path writes them, its background sender delivers and removes
// them. The Spool of a directory is shared by everyone in the process
// who opens it, so the count of entries, the rate limit's buckets and
// the wake-up of the sender are one.
type Spool struct {
	dir        string
	maxEntries atomic.Int64
	count      atomic.Int64
	wake       chan struct{}
	limiter    limiter
	seq        atomic.Uint64
	// sendMu is held by a sender for a pass over the spool, so that the
	// senders of two configurations (around a reload) never both send
	// one report.
	sendMu sync.Mutex
}

// counts are the process's counts of Results.
var counts [len(Results)]atomic.Uint64

// Results are what became of reports, for the metrics: spooled, or
// dropped before the spool (rate_limited, spool_full, spool_error), then
// sent, temporary (a failed attempt, tried again), failed (a permanent
// failure or a destination that is not verified) or expired (given up
// after MaxAge).
var Results = [...]string{ResultSpooled, ResultRateLimited, ResultSpoolFull, ResultSpoolError, ResultSent, ResultTemporary, ResultFailed, ResultExpired}

// The values of Results.
const (
	ResultSpooled     = "spooled"
	ResultRateLimited = "rate_limited"
	ResultSpoolFull   = "spool_full"
	ResultSpoolError  = "spool_error"
	ResultSent        = "sent"
	ResultTemporary   = "temporary"
	ResultFailed      = "failed"
	ResultExpired     = "expired"
)

// Count counts one report (or one destination of a report, for sent,
// temporary, failed and expired) with result, one of Results; others are
// not counted.
func Count(result string) {
	for i, r := range Results {
		if r == result {
			counts[i].Add(1)
			return
		}
	}
}

// Counted returns how many times the process counted result.
func Counted(result string) uint64 {
	for i, r := range Results {
		if r == result {
			return counts[i].Load()
		}
	}
	return 0
}

// Lookup returns the Spool of dir when the process opened it, else nil.
func Lookup(dir string) *Spool {
	spools.Lock()
	defer spools.Unlock()
	return spools.m[filepath.Clean(dir)]
}

// LockSend holds the spool for one sender's pass; the returned function
// releases it.
func (s *Spool) LockSend() func() {
	s.sendMu.Lock()
	return s.sendMu.Unlock
}

var spools = struct {
	sync.Mutex
	m map[string]*Spool
}{m: map[string]*Spool{}}

// OpenSpool returns the Spool of dir, creating the directory (mode 0700)
// when it does not exist. The entries already there are counted.
func OpenSpool(dir string) (*Spool, error) {
	dir = filepath.Clean(dir)
	spools.Lock()
	defer spools.Unlock()
	if s := spools.m[dir]; s != nil {
		return s, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("failure report spool: %w", err)
	}
	s := &Spool{dir: dir, wake: make(chan struct{}, 1)}
	s.maxEntries.Store(DefaultMaxEntries)
	ids, err := s.IDs()
	if err != nil {
		return nil, err
	}
	s.count.Store(int64(len(ids)))
	spools.m[dir] = s
	return s, nil
}

// Dir returns the spool's directory.
func (s *Spool) Dir() string { return s.dir }

// Len returns the number of spooled reports.
func (s *Spool) Len() int { return int(s.count.Load()) }

// SetMaxEntries changes the bound of the spool (DefaultMaxEntries).
func (s *Spool) SetMaxEntries(n int) { s.maxEntries.Store(int64(n)) }

// Wake is signalled when a report is spooled.
func (s *Spool) Wake() <-chan struct{} { return s.wake }

// Allow takes a token from the bucket of policyDomain under rate; false
// when the bucket is empty.
func (s *Spool) Allow(policyDomain string, rate Rate, now time.Time) bool {
	return s.limiter.allow(strings.ToLower(policyDomain), rate, now)
}

// Add spools a new report for its destinations. It never blocks on
// anything but the file system: a full spool is ErrSpoolFull.
func (s *Spool) Add(e *Entry) error {
	if s.count.Load() >= s.maxEntries.Load() {
		Count(ResultSpoolFull)
		return ErrSpoolFull
	}
	if e.Created.IsZero() {
		e.Created = time.Now()
	}
	e.ID = fmt.Sprintf("%d-%d-%s.json", e.Created.UnixNano(), s.seq.Add(1), token()[:8])
	if err := s.write(e); err != nil {
		Count(ResultSpoolError)
		return err
	}
	s.count.Add(1)
	Count(ResultSpooled)
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return nil
}

// Update rewrites an entry (after an attempt).
func (s *Spool) Update(e *Entry) error { return s.write(e) }

func (s *Spool) write(e *Entry) error {
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(s.dir, e.ID), ".tmp-*", data); err != nil {
		return fmt.Errorf("failure report spool: %w", err)
	}
	return nil
}

// Remove deletes an entry: delivered, or given up.
func (s *Spool) Remove(id string) error {
	if err := os.Remove(filepath.Join(s.dir, filepath.Base(id))); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	s.count.Add(-1)
	return nil
}

// IDs lists the spooled reports, oldest first; temporary files of writes
// in progress (or cut short by a crash) are not reports.
func (s *Spool) IDs() ([]string, error) {
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("failure report spool: %w", err)
	}
	var ids []string
	for _, de := range des {
		if n := de.Name(); de.Type().IsRegular() && strings.HasSuffix(n, ".json") && !strings.HasPrefix(n, ".") {
			ids = append(ids, n)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return idLess(ids[i], ids[j]) })
	return ids, nil
}

// idLess orders IDs by their time stamp (a number), then by name.
func idLess(a, b string) bool {
	ta, _, _ := strings.Cut(a, "-")
	tb, _, _ := strings.Cut(b, "-")
	if len(ta) != len(tb) {
		return len(ta) < len(tb)
	}
	if ta != tb {
		return ta < tb
	}
	return a < b
}

// Load reads one entry.
func (s *Spool) Load(id string) (*Entry, error) {
	f, err := os.Open(filepath.Join(s.dir, filepath.Base(id)))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxEntrySize+1))
	if err != nil {
		return nil, err
	}
	e, err := ReadEntry(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", id, err)
	}
	e.ID = filepath.Base(id)
	return e, nil
}

// ReadEntry decodes a spool file.
func ReadEntry(data []byte) (*Entry, error) {
	if len(data) > MaxEntrySize {
		return nil, fmt.Errorf("spool file larger than %d bytes", MaxEntrySize)
	}
	var e Entry
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("corrupt spool file: %w", err)
	}
	if e.Report.PolicyDomain == "" || e.Report.Sender == "" {
		return nil, errors.New("corrupt spool file: no policy domain or sender")
	}
	return &e, nil
}

// limiter holds one token bucket per policy domain.
type limiter struct {
	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// maxBuckets bounds the limiter's memory: beyond it, buckets that have
// refilled are forgotten (a forgotten bucket is a full one).
const maxBuckets = 100000

func (l *limiter) allow(domain string, rate Rate, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buckets == nil {
		l.buckets = map[string]*bucket{}
	}
	capacity := float64(rate.Count)
	per := float64(rate.Period) / capacity // time per token
	b := l.buckets[domain]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			l.prune(capacity, per, now)
			if len(l.buckets) >= maxBuckets {
				return false // every bucket is in use by a wave: refuse the newcomer
			}
		}
		b = &bucket{tokens: capacity, last: now}
		l.buckets[domain] = b
	}
	if now.After(b.last) {
		b.tokens = min(capacity, b.tokens+float64(now.Sub(b.last))/per)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (l *limiter) prune(capacity, per float64, now time.Time) {
	for d, b := range l.buckets {
		if b.tokens+float64(now.Sub(b.last))/per >= capacity {
			delete(l.buckets, d)
		}
	}
}
