package config

// File is the parsed form of one configuration file, before options are
// typed or ACLs compiled.
type File struct {
	Name    string
	Options []*OptionLine
	Lists   []*ListDef
	ACLs    []*ACLDef
}

// OptionLine is a main-section line: `name = value`, or a bare `name`,
// `no_name` or `not_name` for booleans.
type OptionLine struct {
	Name     string
	Pos      Pos
	Value    Value
	HasValue bool
}

// ListKind is the kind of a named list.
type ListKind string

// The named-list kinds, as written in the file.
const (
	DomainList    ListKind = "domainlist"
	HostList      ListKind = "hostlist"
	AddressList   ListKind = "addresslist"
	LocalPartList ListKind = "localpartlist"
)

// ListDef is `domainlist NAME = item : item …` and its siblings.
type ListDef struct {
	Kind  ListKind
	Name  string
	Pos   Pos // of the keyword
	Value Value
}

// ACLDef is a named ACL: `name:` followed by statements.
type ACLDef struct {
	Name       string
	Pos        Pos
	Statements []*Statement
}

// Statement is `verb` followed by conditions and modifiers, one per line.
type Statement struct {
	Verb  string
	Pos   Pos
	Items []*Item
}

// Item is one `[!]name [arg] = value` of a statement. Arg is the second
// word some modifiers take (`set acl_m_x = …`), without a leading `$`.
type Item struct {
	Name     string
	Pos      Pos
	Negated  bool
	Arg      string
	ArgPos   Pos
	Value    Value
	HasValue bool
}

// Value is the text to the right of `=`, with white space trimmed, and the
// positions needed to point into it even when it spans continuation lines.
type Value struct {
	Text string
	Pos  Pos
	segs []segment
}

type segment struct {
	off int // byte offset in Text where this physical line's text starts
	pos Pos
}

// PosAt returns the file position of byte off of v.Text.
func (v Value) PosAt(off int) Pos {
	p := v.Pos
	base := 0
	for _, s := range v.segs {
		if s.off > off {
			break
		}
		p, base = s.pos, s.off
	}
	p.Col += off - base
	return p
}

// Slice returns the sub-value v.Text[i:j] with positions kept.
func (v Value) Slice(i, j int) Value {
	out := Value{Text: v.Text[i:j], Pos: v.PosAt(i)}
	for _, s := range v.segs {
		if s.off > i && s.off < j {
			out.segs = append(out.segs, segment{s.off - i, s.pos})
		}
	}
	return out
}

// NewValue makes a single-line value at pos (for defaults and tests).
func NewValue(text string, pos Pos) Value { return Value{Text: text, Pos: pos} }
