package expand

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

var lookups = struct {
	sync.RWMutex
	m map[string]LookupFunc
}{m: map[string]LookupFunc{"lsearch": lsearch}}

// RegisterLookup makes ${lookup{KEY}kind{ARG}} available to strings
// compiled afterwards. kind is made of letters, digits, "_" and "-";
// registering a kind again replaces it. It panics on an invalid kind or a
// nil fn. The package registers "lsearch".
func RegisterLookup(kind string, fn LookupFunc) {
	if kind == "" || fn == nil {
		panic("expand: RegisterLookup with empty kind or nil func")
	}
	for i := 0; i < len(kind); i++ {
		if !isLookupNameChar(kind[i]) {
			panic(fmt.Sprintf("expand: RegisterLookup: invalid lookup kind %q", kind))
		}
	}
	lookups.Lock()
	lookups.m[kind] = fn
	lookups.Unlock()
}

func isLookupNameChar(c byte) bool {
	return isNameChar(c) || c == '-'
}

func getLookup(kind string) (LookupFunc, []string) {
	lookups.RLock()
	defer lookups.RUnlock()
	if fn, ok := lookups.m[kind]; ok {
		return fn, nil
	}
	names := make([]string, 0, len(lookups.m))
	for k := range lookups.m {
		names = append(names, k)
	}
	sort.Strings(names)
	return nil, names
}

// ---- lsearch ----

// lsearchMaxFile bounds the size of an lsearch file.
const lsearchMaxFile = 64 << 20

// lsearchMaxCached bounds how many parsed files are kept.
const lsearchMaxCached = 256

type lsearchFile struct {
	fi   os.FileInfo
	data map[string]string // lower-cased key → value
}

var lsearchCache = struct {
	sync.Mutex
	m map[string]*lsearchFile
}{m: map[string]*lsearchFile{}}

// lsearch looks key up in the file named by arg (an absolute path). The
// parsed file is cached and read again when its modification time, size
// or identity changes.
func lsearch(_ context.Context, _ Env, key, arg string) (string, bool, error) {
	path := strings.TrimSpace(arg)
	if !filepath.IsAbs(path) {
		return "", false, fmt.Errorf("lsearch file name %q is not an absolute path", path)
	}
	f, err := lsearchLoad(path)
	if err != nil {
		return "", false, err
	}
	v, ok := f.data[strings.ToLower(key)]
	return v, ok, nil
}

func lsearchLoad(path string) (*lsearchFile, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("lsearch: %w", err)
	}
	lsearchCache.Lock()
	c := lsearchCache.m[path]
	lsearchCache.Unlock()
	if c != nil && os.SameFile(c.fi, fi) && c.fi.ModTime().Equal(fi.ModTime()) && c.fi.Size() == fi.Size() {
		return c, nil
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("lsearch: %s is not a regular file", path)
	}
	if fi.Size() > lsearchMaxFile {
		return nil, fmt.Errorf("lsearch: %s is larger than %d bytes", path, lsearchMaxFile)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("lsearch: %w", err)
	}
	if len(b) > lsearchMaxFile {
		return nil, errors.New("lsearch: " + path + " grew too large while reading")
	}
	// The file information from before the read is kept: if the file
	// changes during or after the read, the next lookup sees a different
	// modification time and reads it again.
	c = &lsearchFile{fi: fi, data: parseLsearch(string(b))}
	lsearchCache.Lock()
	if _, ok := lsearchCache.m[path]; !ok && len(lsearchCache.m) >= lsearchMaxCached {
		for k := range lsearchCache.m { // drop an arbitrary entry
			delete(lsearchCache.m, k)
			break
		}
	}
	lsearchCache.m[path] = c
	lsearchCache.Unlock()
	return c, nil
}

// parseLsearch parses the lines of an lsearch file:
//
//	# comment
//	key: value
//	key value
//	"quoted key: with spaces" value
//	key: value that
//	  continues on lines starting with white space
//
// Blank lines and lines starting with "#" are ignored. Keys are compared
// case-insensitively; the first line for a key wins. A continuation line
// is added to the value after a single space, without its leading white
// space.
func parseLsearch(text string) map[string]string {
	m := make(map[string]string)
	var key string
	var val strings.Builder
	have := false
	commit := func() {
		if have {
			k := strings.ToLower(key)
			if _, dup := m[k]; !dup {
				m[k] = val.String()
			}
		}
		have = false
		val.Reset()
	}
	for len(text) > 0 {
		line := text
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			text = ""
		}
		line = strings.TrimRight(line, " \t\r")
		if line == "" || line[0] == '#' {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if have {
				if val.Len() > 0 {
					val.WriteByte(' ')
				}
				val.WriteString(strings.TrimLeft(line, " \t"))
			}
			continue
		}
		commit()
		var rest string
		key, rest = lsearchKey(line)
		rest = strings.TrimLeft(rest, " \t")
		if strings.HasPrefix(rest, ":") {
			rest = strings.TrimLeft(rest[1:], " \t")
		}
		val.WriteString(rest)
		have = true
	}
	commit()
	return m
}

// lsearchKey splits the key from the start of a line. A quoted key may
// contain white space and colons; inside it, a backslash takes the next
// character literally.
func lsearchKey(line string) (key, rest string) {
	if line[0] != '"' {
		i := strings.IndexAny(line, " \t:")
		if i < 0 {
			return line, ""
		}
		return line[:i], line[i:]
	}
	var b strings.Builder
	for i := 1; i < len(line); i++ {
		switch c := line[i]; c {
		case '\\':
			if i+1 < len(line) {
				i++
				b.WriteByte(line[i])
			}
		case '"':
			return b.String(), line[i+1:]
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), "" // unterminated quote: the rest of the line
}
