package expand

import (
	"context"
	"errors"
	"fmt"
)

// Env is what an expansion reads while it is evaluated: one per SMTP
// transaction, supplied by the acl package.
type Env interface {
	// Header returns the raw values (text after "Name:", folding kept,
	// without the final CRLF) of every header field called name, compared
	// case-insensitively, in message order. It returns nil when there is no
	// such field.
	Header(name string) []string
}

// Getter returns the value of a variable when an expansion is evaluated;
// ctx bounds what it may wait for.
type Getter func(ctx context.Context, env Env) (string, error)

// LookupFunc answers ${lookup{KEY}KIND{ARG}...}. found is false when the
// key has no entry (the "no" branch runs); err is for failures that must
// defer (unreadable file, DNS timeout).
type LookupFunc func(ctx context.Context, env Env, key, arg string) (value string, found bool, err error)

// Scope resolves names while an expansion is compiled, so that a name that
// cannot exist where the string is used is a load-time error.
type Scope interface {
	// Var resolves a variable name as written after "$" (without the $ and
	// braces): "sender_address", "acl_m_flag", "spf_result". The error is
	// reported at the variable's offset; it should say what is wrong and,
	// when it can, suggest a close name ("did you mean $sender_address?").
	Var(name string) (Getter, error)
	// Headers returns nil when $h_/$rh_ header variables are available to
	// this string, or an error saying why not (e.g. "headers do not exist
	// at the RCPT stage").
	Headers() error
}

// Limits bound the cost of evaluating one expansion.
type Limits struct {
	MaxOutput int // bytes of output; default 64 KiB
}

// Default limits.
const (
	DefaultMaxOutput = 64 << 10
	// MaxNesting bounds how deeply ${...} items may nest; deeper strings
	// are rejected by Compile.
	MaxNesting = 32
)

// Sentinel errors for errors.Is.
var (
	ErrOutputTooLarge = errors.New("expansion output exceeds the size limit")
	ErrSyntax         = errors.New("expansion syntax error")
)

// Error is a compile-time error at a byte offset of the source string.
type Error struct {
	Offset int    // byte offset into the string given to Compile
	Msg    string // what is wrong, and what to write instead when known
}

func (e *Error) Error() string { return fmt.Sprintf("offset %d: %s", e.Offset, e.Msg) }

// Unwrap makes errors.Is(err, ErrSyntax) true for every compile error.
func (e *Error) Unwrap() error { return ErrSyntax }
