package dkimcore

import "hash"

// FieldIndex maps a lower-case field name to the positions of the fields
// of that name, top to bottom.
type FieldIndex map[string][]int

// IndexFields builds the index of a header: linear in the field count.
func IndexFields(fields []Field) FieldIndex {
	idx := make(FieldIndex, len(fields))
	for i := range fields {
		idx[fields[i].LName] = append(idx[fields[i].LName], i)
	}
	return idx
}

// smallSelection is the fields × names product under which a scan beats
// building the index; smallNames bounds the names the scan takes, whose
// cursor search is quadratic in the names.
const (
	smallSelection = 4096
	smallNames     = 32
)

// NeedsIndex reports whether selecting names among fields should use an
// index (built once per message with IndexFields) rather than a scan.
func NeedsIndex(fields []Field, names []string) bool {
	return len(names) > smallNames || len(fields)*len(names) > smallSelection
}

// HashSelected hashes the canonical fields named by names (lower case):
// for each name, the lowest field of that name not yet used, going up
// (RFC 6376 §5.4.2). A name with no field left contributes nothing
// (over-signing, names of absent fields). buf is scratch memory for the
// canonical fields, returned for reuse. skip is the signature field
// itself, which its own h= never selects. idx may be nil; it is then
// built when the selection is large. The work is linear in the number of
// names and fields, whatever the h= list: each name costs one map lookup,
// each field is canonicalised at most once.
func HashSelected(h hash.Hash, buf []byte, fields []Field, idx FieldIndex, names []string, relaxed bool, skip *Field) []byte {
	buf = buf[:0]
	if idx == nil && !NeedsIndex(fields, names) {
		return hashSelectedSmall(h, buf, fields, names, relaxed, skip)
	}
	if idx == nil {
		idx = IndexFields(fields)
	}
	var used map[string]int // fields of each name used so far, from the bottom
	for _, name := range names {
		pos := idx[name]
		n := used[name]
		for n < len(pos) && &fields[pos[len(pos)-1-n]] == skip {
			n++
		}
		if n >= len(pos) {
			continue
		}
		f := &fields[pos[len(pos)-1-n]]
		buf = writeCanon(h, buf, f, relaxed)
		if used == nil {
			used = make(map[string]int, min(len(names), len(fields)))
		}
		used[name] = n + 1
	}
	return flushCanon(h, buf)
}

// hashBatch is the canonical bytes gathered before they go to the hash in
// one call: the fields of a usual header in one write, the memory bounded
// whatever the header.
const hashBatch = 4096

// writeCanon appends the canonical form of f to buf, and hashes what buf
// holds once it reaches hashBatch bytes.
func writeCanon(h hash.Hash, buf []byte, f *Field, relaxed bool) []byte {
	buf = CanonHeader(buf, f, relaxed)
	if len(buf) >= hashBatch {
		return flushCanon(h, buf)
	}
	return buf
}

// flushCanon hashes what buf holds and returns it emptied.
func flushCanon(h hash.Hash, buf []byte) []byte {
	if len(buf) > 0 {
		h.Write(buf)
	}
	return buf[:0]
}

// hashSelectedSmall is HashSelected for the usual small header: a scan up
// from the bottom per name, resuming where the last field of that name
// was found, without maps.
func hashSelectedSmall(h hash.Hash, buf []byte, fields []Field, names []string, relaxed bool, skip *Field) []byte {
	type cursor struct {
		name string
		next int
	}
	var stack [16]cursor
	cursors := stack[:0]
	for _, name := range names {
		if name == "" {
			continue
		}
		c := -1
		for k := range cursors {
			if cursors[k].name == name {
				c = k
				break
			}
		}
		if c < 0 {
			cursors = append(cursors, cursor{name, len(fields) - 1})
			c = len(cursors) - 1
		}
		i := cursors[c].next
		for ; i >= 0; i-- {
			if f := &fields[i]; f != skip && f.LName == name {
				buf = writeCanon(h, buf, f, relaxed)
				break
			}
		}
		cursors[c].next = i - 1
	}
	return flushCanon(h, buf)
}
