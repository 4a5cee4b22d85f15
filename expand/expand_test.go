package expand

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ---- test scope and environment ----

var errTestVar = errors.New("variable backend down")
var errTestLookup = errors.New("lookup backend down")

// testVars are the variables of testScope.
var testVars = map[string]string{
	"sender_address":    "alice@Example.COM",
	"dmarc_status":      "reject",
	"dmarc_used_domain": "Example.COM",
	"authenticated_id":  "",
	"client_ip":         "192.0.2.7",
	"num":               "42",
	"empty":             "",
	"pattern":           "^alice@",
	"badre":             "(",
	"word":              "wörld",
	"dots":              "a.b.c",
	"long":              strings.Repeat("x", 1000),
	"flag":              "yes",
}

// testScope resolves testVars plus "broken" (a getter that fails).
type testScope struct{ noHeaders bool }

func (s testScope) Var(name string) (Getter, error) {
	if name == "broken" {
		return func(context.Context, Env) (string, error) { return "", errTestVar }, nil
	}
	if _, ok := testVars[name]; !ok {
		names := make([]string, 0, len(testVars))
		for k := range testVars {
			names = append(names, k)
		}
		hint := suggest(name, names)
		if hint != "" {
			hint = strings.Replace(hint, `"`, `$`, 1)
			hint = strings.Replace(hint, `"`, ``, 1)
		}
		return nil, fmt.Errorf("unknown variable $%s%s", name, hint)
	}
	return func(_ context.Context, env Env) (string, error) {
		if e, ok := env.(*testEnv); ok {
			if v, ok := e.vars[name]; ok {
				return v, nil
			}
		}
		return testVars[name], nil
	}, nil
}

func (s testScope) Headers() error {
	if s.noHeaders {
		return errors.New("header variables cannot be used at the RCPT stage: there are no headers yet")
	}
	return nil
}

type testHeader struct{ name, value string }

type testEnv struct {
	ctx     context.Context
	vars    map[string]string // overrides of testVars
	headers []testHeader
}

// testCtx is the context a test environment carries for its evaluation.
func testCtx(env Env) context.Context {
	if e, ok := env.(*testEnv); ok && e != nil && e.ctx != nil {
		return e.ctx
	}
	return context.Background()
}

// evalTest evaluates with the test environment's context.
func (e *Expr) evalTest(env Env) (string, error) { return e.Eval(testCtx(env), env) }

func (e *Expr) evalLimitsTest(env Env, lim Limits) (string, error) {
	return e.EvalLimits(testCtx(env), env, lim)
}

func (e *testEnv) Header(name string) []string {
	var vals []string
	for _, h := range e.headers {
		if strings.EqualFold(h.name, name) {
			vals = append(vals, h.value)
		}
	}
	return vals
}

var testHeaders = []testHeader{
	{"Subject", " =?UTF-8?Q?Hello_w=C3=B6rld?= "},
	{"X-Multi", " one "},
	{"From", " Alice <alice@example.com>"},
	{"X-Multi", " two"},
	{"X-Folded", " first\r\n second"},
	{"X-Split", " =?utf-8?q?a?= =?utf-8?q?b?= c"},
	{"X-Latin", " =?ISO-8859-1?Q?caf=E9?="},
	{"X-Win", " =?windows-1252?Q?=93hi=94?="},
	{"X-Koi", " =?koi8-r?Q?=C1b?="},
	{"X-Bad", " =?utf-8?x?zz?="},
	{"X-Big", strings.Repeat("b", 70000)},
	{"X-Empty", ""},
}

func newEnv() *testEnv { return &testEnv{headers: testHeaders} }

// Test lookups: "map" answers from testMap and counts its calls; "fail"
// always fails; "echo" returns key|arg.
var (
	testMap     = map[string]string{"alice": "A", "bob": "B", "empty": ""}
	mapCalls    atomic.Int64
	failCalls   atomic.Int64
	registerOne sync.Once
)

func registerTestLookups() {
	registerOne.Do(func() {
		RegisterLookup("map", func(_ context.Context, _ Env, key, _ string) (string, bool, error) {
			mapCalls.Add(1)
			v, ok := testMap[key]
			return v, ok, nil
		})
		RegisterLookup("fail", func(context.Context, Env, string, string) (string, bool, error) {
			failCalls.Add(1)
			return "", false, errTestLookup
		})
		RegisterLookup("echo", func(_ context.Context, _ Env, key, arg string) (string, bool, error) {
			return key + "|" + arg, true, nil
		})
	})
}

func TestMain(m *testing.M) {
	registerTestLookups()
	os.Exit(m.Run())
}

// ---- evaluation ----

type evalCase struct {
	name string
	src  string
	want string
}

var evalCases = []evalCase{
	// text and escapes
	{"plain", "plain text", "plain text"},
	{"empty", "", ""},
	{"escaped specials", `a\$b\{c\}d\\e`, `a$b{c}d\e`},
	{"control escapes", `a\nb\tc\rd`, "a\nb\tc\rd"},
	{"escaped ordinary", `\q\.\0`, "q.0"},
	{"trailing backslash", `ab\`, `ab\`},
	{"protected", `\N$x{}\d+\N!`, `$x{}\d+!`},
	{"protected empty", `a\N\Nb`, `ab`},
	{"top-level braces", "a}b{c", "a}b{c"},
	{"escaped utf8", `\é`, "é"},

	// variables
	{"var", "$sender_address", "alice@Example.COM"},
	{"var braces", "${sender_address}x", "alice@Example.COMx"},
	{"var ends at dot", "<$sender_address>.$num.", "<alice@Example.COM>.42."},
	{"empty var", "[$empty]", "[]"},

	// headers
	{"h decoded", "$h_Subject:", "Hello wörld"},
	{"header decoded", "$header_subject:", "Hello wörld"},
	{"h braces", "${h_Subject:}!", "Hello wörld!"},
	{"bh trimmed", "[$bh_Subject:]", "[=?UTF-8?Q?Hello_w=C3=B6rld?=]"},
	{"bheader", "[$bheader_Subject:]", "[=?UTF-8?Q?Hello_w=C3=B6rld?=]"},
	{"rh raw", "[$rh_Subject:]", "[ =?UTF-8?Q?Hello_w=C3=B6rld?= ]"},
	{"multi h", "[$h_X-Multi:]", "[one\ntwo]"},
	{"multi rh", "[$rheader_X-Multi:]", "[ one \n two]"},
	{"multi bh", "[$bh_X-Multi:]", "[one\ntwo]"},
	{"folded h", "[$h_X-Folded:]", "[first second]"},
	{"folded rh", "[$rh_X-Folded:]", "[ first\r\n second]"},
	{"adjacent words", "[$h_X-Split:]", "[ab c]"},
	{"latin1", "$h_X-Latin:", "café"},
	{"windows-1252", "$h_X-Win:", "“hi”"},
	{"unknown charset", "$h_X-Koi:", "\ufffdb"},
	{"malformed word", "$h_X-Bad:", "=?utf-8?x?zz?="},
	{"missing header", "[$h_X-None:]", "[]"},
	{"big header truncated", "${strlen:$rh_X-Big:}", "65536"},
	{"def header", "${if def:h_subject:{y}{n}}", "y"},
	{"def empty header", "${if def:h_X-Empty:{y}{n}}", "y"},
	{"def missing header", "${if def:h_X-None:{y}{n}}", "n"},

	// if forms
	{"if yes", "${if eq{$dmarc_status}{reject}{yes}{no}}", "yes"},
	{"if no", "${if eq{$dmarc_status}{none}{yes}{no}}", "no"},
	{"if spaces", "${if  eq {$dmarc_status} {reject}  {yes}\n {no} }", "yes"},
	{"if yes only false", "[${if eq{$dmarc_status}{x}{yes}}]", "[]"},
	{"if no strings true", "${if eq{$dmarc_status}{reject}}", "true"},
	{"if no strings false", "[${if eq{$dmarc_status}{x}}]", "[]"},
	{"eqi", "${if eqi{$dmarc_used_domain}{example.com}{y}{n}}", "y"},
	{"eq case", "${if eq{$dmarc_used_domain}{example.com}{y}{n}}", "n"},
	{"ne", "${if ne{$dmarc_status}{none}{y}{n}}", "y"},
	{"nested if", "${if def:sender_address{${if eq{$num}{42}{${if eq{a}{b}{x}{deep}}}{n}}}{n}}", "deep"},
	{"negation", "${if !eq{$num}{1}{y}{n}}", "y"},
	{"double negation", "${if ! !eq{$num}{42}{y}{n}}", "y"},

	// numeric
	{"gt", "${if >{$num}{10}{big}{small}}", "big"},
	{"lt", "${if <{$num}{10}{big}{small}}", "small"},
	{"eq num", "${if ={$num}{042}{y}{n}}", "y"},
	{"eqeq num", "${if =={$num}{42}{y}{n}}", "y"},
	{"ne num", "${if !={$num}{42}{y}{n}}", "n"},
	{"le", "${if <={$num}{42}{y}{n}}", "y"},
	{"ge", "${if >={$num}{43}{y}{n}}", "n"},
	{"K suffix", "${if =={1K}{1024}{y}{n}}", "y"},
	{"M suffix", "${if =={2m}{2097152}{y}{n}}", "y"},
	{"G suffix", "${if <{3G}{3221225473}{y}{n}}", "y"},
	{"negative", "${if <{-5}{3}{y}{n}}", "y"},
	{"spaces in number", "${if ={ 7 }{+7}{y}{n}}", "y"},

	// match and captures
	{"match captures", `${if match{$sender_address}{^(.*)@(.*)\$}{$2 / $1}}`, "Example.COM / alice"},
	{"match protected", `${if match{$sender_address}{\N^(.*)@(.*)$\N}{[$0]}}`, "[alice@Example.COM]"},
	{"match no", `${if match{$sender_address}{^bob}{y}{n}}`, "n"},
	{"unset group", `${if match{$dmarc_status}{(re)|(x)}{[$1][$2][$9]}}`, "[re][][]"},
	{"nested match", `${if match{$dmarc_status}{(j)}{${if match{$sender_address}{(l)}{$1}}-$1}}`, "l-j"},
	{"inner if keeps captures", `${if match{$dmarc_status}{(rej)}{${if eq{a}{a}{$1}}}}`, "rej"},
	{"inner no restores", `${if match{$dmarc_status}{(rej)}{${if match{$num}{(x)}{no}{$1}}}}`, "rej"},
	{"or without match", `${if or{{eq{$dmarc_status}{reject}}{match{$sender_address}{(a)}}}{[$1]}}`, "[]"},
	{"or with match", `${if or{{eq{$dmarc_status}{x}}{match{$sender_address}{(a)}}}{[$1]}}`, "[a]"},
	{"and last match", `${if and{{match{$dmarc_status}{(rej)}}{match{$sender_address}{(ali)}}}{$1}}`, "ali"},
	{"and captures", `${if and{{match{$sender_address}{^(\\w+)@}}{eq{$1}{alice}}}{[$1]}{no}}`, "[alice]"},
	{"and captures false", `${if and{{match{$sender_address}{^(\\w+)@}}{eq{$1}{bob}}}{[$1]}{no}}`, "no"},
	{"and captures numeric", `${if and{{match{$h_Subject:}{(\\w+)}}{eq{$1}{Hello}}{>{${strlen:$1}}{3}}}{y}{n}}`, "y"},
	{"dynamic regex", `${if match{$sender_address}{$pattern}{y}{n}}`, "y"},
	{"constant match folds", `${if match{abc}{(b)}{$1}}`, "b"},

	// def, and, or, isip, bool
	{"def set", "${if def:sender_address{y}{n}}", "y"},
	{"def empty", "${if def:authenticated_id{y}{n}}", "n"},
	{"not def", "${if !def:authenticated_id{y}{n}}", "y"},
	{"and true", "${if and{{def:sender_address}{eq{$num}{42}}}{y}{n}}", "y"},
	{"and false", "${if and {{def:sender_address} {eq{$num}{1}}} {y}{n}}", "n"},
	{"or true", "${if or{{eq{$num}{1}}{eq{$num}{42}}}{y}{n}}", "y"},
	{"or false", "${if or{{eq{$num}{1}}{eq{$num}{2}}}{y}{n}}", "n"},
	{"or short-circuit", "${if or{{eq{$num}{42}}{eq{${lookup{k}fail{x}}}{y}}}{ok}}", "ok"},
	{"and short-circuit", "${if and{{eq{$num}{1}}{eq{${lookup{k}fail{x}}}{y}}}{y}{n}}", "n"},
	{"unevaluated branch", "${if eq{$num}{42}{ok}{${lookup{k}fail{x}}}}", "ok"},
	{"isip var", "${if isip{$client_ip}{y}{n}}", "y"},
	{"isip4", "${if isip4{$client_ip}{y}{n}}", "y"},
	{"isip6 of v4", "${if isip6{$client_ip}{y}{n}}", "n"},
	{"isip6", "${if isip6{2001:db8::1}{y}{n}}", "y"},
	{"isip6 mapped", "${if isip6{::ffff:192.0.2.1}{y}{n}}", "y"},
	{"isip4 of v6", "${if isip4{::1}{y}{n}}", "n"},
	{"isip junk", "${if isip{$sender_address}{y}{n}}", "n"},
	{"isip zone", "${if isip{fe80::1%eth0}{y}{n}}", "n"},
	{"bool yes", "${if bool{$flag}{y}{n}}", "y"},
	{"bool true spaces", "${if bool{ TRUE }{y}{n}}", "y"},
	{"bool number", "${if bool{$num}{y}{n}}", "y"},
	{"bool negative", "${if bool{-1}{y}{n}}", "y"},
	{"bool zero", "${if bool{00}{y}{n}}", "n"},
	{"bool no", "${if bool{no}{y}{n}}", "n"},
	{"bool empty", "${if bool{$empty}{y}{n}}", "n"},

	// operators
	{"lc", "${lc:$sender_address}", "alice@example.com"},
	{"uc", "${uc:$sender_address}", "ALICE@EXAMPLE.COM"},
	{"uc unicode", "${uc:$word}", "WÖRLD"},
	{"lc unicode", "${lc:ÀÉ}", "àé"},
	{"domain", "${domain:$sender_address}", "Example.COM"},
	{"local_part", "${local_part:$sender_address}", "alice"},
	{"domain last at", "${domain:a@b@c}", "c"},
	{"local_part last at", "${local_part:a@b@c}", "a@b"},
	{"domain none", "[${domain:postmaster}]", "[]"},
	{"local_part unqualified", "${local_part:postmaster}", "postmaster"},
	{"domain empty", "[${domain:x@}]", "[]"},
	{"domain angle", "${domain: Alice <alice@example.org> }", "example.org"},
	{"local_part angle", "${local_part:$h_From:}", "alice"},
	{"length", "${length_3:abcdef}", "abc"},
	{"length long", "${length_10:abc}", "abc"},
	{"length zero", "[${length_0:abc}]", "[]"},
	{"strlen", "${strlen:$word}", "6"},
	{"strlen empty", "${strlen:}", "0"},
	{"nested operators", "${uc:${length_5:$sender_address}}", "ALICE"},
	{"operator spaces kept", "${uc: a }", " A "},

	// sg
	{"sg", `${sg{$dots}{\\.}{-}}`, "a-b-c"},
	{"sg captures", `${sg{$sender_address}{(\\w+)@(\\w+)}{$2 at $1}}`, "Example at alice.COM"},
	{"sg whole", `${sg{abc}{b}{[$0]}}`, "a[b]c"},
	{"sg missing group", `${sg{aaa}{a}{[$1]}}`, "[][][]"},
	{"sg empty match", `${sg{abc}{x*}{-}}`, "-a-b-c-"},
	{"sg empty regex", `${sg{é}{}{-}}`, "-é-"},
	{"sg anchored", `${sg{abc}{^}{>}}`, ">abc"},
	{"sg caret once", `${sg{aaa}{^a}{b}}`, "baa"},
	{"sg word boundary", `${sg{$dmarc_status x}{\\b}{|}}`, "|reject| |x|"},
	{"sg dynamic", `${sg{$sender_address}{$pattern}{bob@}}`, "bob@Example.COM"},
	{"sg nested if", `${sg{ab}{(.)}{${if eq{$1}{a}{A}{$1$1}}}}`, "Abb"},
	{"sg no match", `${sg{abc}{z}{y}}`, "abc"},
	{"sg spaces", "${sg {abc} {b} {B} }", "aBc"},

	// lookups
	{"lookup value", "${lookup{alice}map{x}}", "A"},
	{"lookup miss", "[${lookup{nobody}map{x}}]", "[]"},
	{"lookup yes", "${lookup{alice}map{x}{found $value}{none}}", "found A"},
	{"lookup no", "${lookup{zed}map{x}{found $value}{none [$value]}}", "none []"},
	{"lookup yes only miss", "[${lookup{zed}map{x}{found}}]", "[]"},
	{"lookup braced value", "${lookup{alice}map{x}{${value}}}", "A"},
	{"lookup nested value", "${lookup{alice}map{x}{${lookup{bob}map{x}{$value}}+$value}}", "B+A"},
	{"lookup def value", "${lookup{empty}map{x}{${if def:value{set}{empty}}}}", "empty"},
	{"lookup dynamic key", "${lookup{${local_part:$sender_address}}map{x}}", "A"},
	{"lookup arg", "${lookup {k} echo {$num} {<$value>}}", "<k|42>"},
}

func TestEval(t *testing.T) {
	for _, tc := range evalCases {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Compile(tc.src, testScope{})
			if err != nil {
				t.Fatalf("Compile(%q): %v", tc.src, err)
			}
			got, err := e.evalTest(newEnv())
			if err != nil {
				t.Fatalf("Eval(%q): %v", tc.src, err)
			}
			if got != tc.want {
				t.Errorf("Eval(%q)\n got %q\nwant %q\ntree %s", tc.src, got, tc.want, e)
			}
		})
	}
}

func TestEnvOverride(t *testing.T) {
	e, err := Compile("${if eq{$dmarc_status}{reject}{R ${lc:$dmarc_used_domain}}{ok}}", testScope{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ status, want string }{
		{"reject", "R example.com"},
		{"none", "ok"},
	} {
		env := newEnv()
		env.vars = map[string]string{"dmarc_status": tc.status}
		got, err := e.evalTest(env)
		if err != nil || got != tc.want {
			t.Errorf("status %s: got %q, %v; want %q", tc.status, got, err, tc.want)
		}
	}
}

func TestNilEnv(t *testing.T) {
	e, err := Compile("[$h_Subject:][${if def:h_From:{y}{n}}]", testScope{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.evalTest(nil)
	if err != nil || got != "[][n]" {
		t.Errorf("got %q, %v", got, err)
	}
}

// TestShortCircuit checks that lookups in conditions and strings that are
// not needed are not run.
func TestShortCircuit(t *testing.T) {
	tests := []struct {
		name, src, want string
		calls           int64
	}{
		{"or stops", "${if or{{eq{$num}{42}}{eq{${lookup{alice}map{x}}}{A}}}{y}{n}}", "y", 0},
		{"or goes on", "${if or{{eq{$num}{1}}{eq{${lookup{alice}map{x}}}{A}}}{y}{n}}", "y", 1},
		{"and stops", "${if and{{eq{$num}{1}}{eq{${lookup{alice}map{x}}}{A}}}{y}{n}}", "n", 0},
		{"and goes on", "${if and{{eq{$num}{42}}{eq{${lookup{alice}map{x}}}{A}}}{y}{n}}", "y", 1},
		{"no branch skipped", "${if eq{$num}{42}{y}{${lookup{alice}map{x}}}}", "y", 0},
		{"yes branch skipped", "${if eq{$num}{1}{${lookup{alice}map{x}}}{n}}", "n", 0},
		{"lookup yes skipped", "${lookup{zed}map{x}{${lookup{alice}map{x}}}{n}}", "n", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Compile(tc.src, testScope{})
			if err != nil {
				t.Fatal(err)
			}
			before := mapCalls.Load()
			got, err := e.evalTest(newEnv())
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
			if n := mapCalls.Load() - before; n != tc.calls {
				t.Errorf("lookup ran %d times, want %d", n, tc.calls)
			}
		})
	}
}

// ---- evaluation errors ----

func TestEvalErrors(t *testing.T) {
	tests := []struct {
		name, src string
		is        error  // errors.Is target, or nil
		msg       string // substring of the message
		offset    int    // EvalError offset, -1 to skip
	}{
		{"not a number", "x${if >{$sender_address}{1}}", nil, `"alice@Example.COM" is not a number`, 6},
		{"literal not a number", "${if >{abc}{1}}", nil, `numeric comparison ">": "abc" is not a number`, 5},
		{"empty number", "${if <{}{1}}", nil, `"" is not a number`, 5},
		{"bare suffix", "${if <{K}{1}}", nil, `"K" is not a number`, 5},
		{"overflow", "${if ={99999999999999999999}{1}}", nil, "is not a number", 5},
		{"suffix overflow", "${if ={9999999999G}{1}}", nil, "is not a number", 5},
		{"bool junk", "${if bool{maybe}{y}{n}}", nil, `bool: "maybe" is not true, false, yes, no or a number`, 5},
		{"getter fails", "a $broken", errTestVar, "$broken: variable backend down", 2},
		{"def getter fails", "${if def:broken{y}{n}}", errTestVar, "def:broken", 9},
		{"lookup fails", "${lookup{k}fail{x}}", errTestLookup, "${lookup} fail: lookup backend down", 0},
		{"bad dynamic regex", "${if match{a}{$badre}{y}}", nil, `invalid regular expression "(" in match`, 14},
		{"bad dynamic sg regex", "${sg{a}{$badre}{y}}", nil, `invalid regular expression "(" in ${sg}`, 8},
		{"lsearch relative", "${lookup{k}lsearch{etc/aliases}}", nil, "not an absolute path", 0},
		{"lsearch missing file", "${lookup{k}lsearch{/nonexistent/sidecar/file}}", os.ErrNotExist, "no such file", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Compile(tc.src, testScope{})
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			got, err := e.evalTest(newEnv())
			if err == nil {
				t.Fatalf("Eval = %q, want an error", got)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not contain %q", err, tc.msg)
			}
			var ee *EvalError
			if !errors.As(err, &ee) {
				t.Fatalf("error %v is not an *EvalError", err)
			}
			if tc.offset >= 0 && ee.Offset != tc.offset {
				t.Errorf("offset = %d, want %d", ee.Offset, tc.offset)
			}
			if errors.Is(err, ErrSyntax) {
				t.Errorf("evaluation error %v must not be ErrSyntax", err)
			}
		})
	}
}

func TestCancelledContext(t *testing.T) {
	e, err := Compile("${lookup{alice}map{x}}", testScope{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	env := newEnv()
	env.ctx = ctx
	if _, err := e.evalTest(env); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

// ---- limits ----

func TestOutputLimit(t *testing.T) {
	tests := []struct {
		name, src string
		max       int
		want      string // "" means ErrOutputTooLarge expected
	}{
		{"fits", "$long", 1000, strings.Repeat("x", 1000)},
		{"variable too long", "$long", 999, ""},
		{"constant too long", "abcdef", 5, ""},
		{"constant fits", "abcde", 5, "abcde"},
		{"default limit", "${sg{$long}{x}{${sg{$long}{x}{yy}}}}", 0, ""},
		{"intermediate counts", "${length_1:$long}", 500, ""},
		{"condition operands count", "${if eq{$long}{x}{y}{n}}", 500, ""},
		{"sg growth stops", "${sg{$long}{}{0123456789}}", 5000, ""},
		{"sg growth context path", "${sg{$long}{\\b|x}{0123456789}}", 5000, ""},
		{"sg subject counts", "${sg{$long}{x}{}}", 10, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Compile(tc.src, testScope{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := e.evalLimitsTest(newEnv(), Limits{MaxOutput: tc.max})
			if tc.want == "" {
				if !errors.Is(err, ErrOutputTooLarge) {
					t.Fatalf("got %d bytes, %v; want ErrOutputTooLarge", len(got), err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestNestingLimit(t *testing.T) {
	nest := func(n int) string {
		return strings.Repeat("${lc:", n) + "X" + strings.Repeat("}", n)
	}
	if e, err := Compile(nest(MaxNesting), nil); err != nil {
		t.Fatalf("%d levels: %v", MaxNesting, err)
	} else if got, _ := e.evalTest(nil); got != "x" {
		t.Fatalf("got %q", got)
	}
	_, err := Compile(nest(MaxNesting+1), nil)
	var ce *Error
	if !errors.As(err, &ce) || ce.Offset != 5*MaxNesting || !strings.Contains(ce.Msg, "nested more than 32 deep") {
		t.Fatalf("%d levels: %v", MaxNesting+1, err)
	}
	nots := "${if " + strings.Repeat("!", MaxNesting+1) + "eq{a}{b}}"
	if _, err := Compile(nots, nil); err == nil || !strings.Contains(err.Error(), "conditions are nested more than 32 deep") {
		t.Fatalf("deep negation: %v", err)
	}
	ands := "${if " + strings.Repeat("and{{", MaxNesting+1) + "eq{a}{b}" + strings.Repeat("}}", MaxNesting+1) + "}"
	if _, err := Compile(ands, nil); err == nil || !strings.Contains(err.Error(), "conditions are nested more than 32 deep") {
		t.Fatalf("deep and: %v", err)
	}
}

// ---- compile errors ----

type compileErrCase struct {
	name, src string
	offset    int
	msg       string // the whole message when it starts with "=", else a substring
}

var compileErrCases = []compileErrCase{
	{"unterminated if", "${if eq{a}{b}", 0, `=missing "}" to close "${if" opened here`},
	{"unterminated if later", "ab ${if eq{$num}{b}{y}{n}", 3, `=missing "}" to close "${if" opened here`},
	{"unterminated operator", "${lc:abc", 0, `=missing "}" to close "${lc:" opened here`},
	{"unterminated var", "x${sender_address", 1, `=missing "}" to close "${sender_address" opened here`},
	{"unterminated dollar brace", "ab${", 2, `="${" opened here is not closed`},
	{"unterminated argument", "${if eq{a}{b", 10, `=missing "}" to close the second string of "eq" opened here`},
	{"missing argument at end", "${if eq{a}", 0, `="${if" opened here is not complete: expected "{" to start the second string of "eq", found the end of the string`},
	{"missing argument", "${if eq{a}}", 10, `=expected "{" to start the second string of "eq", found "}"`},
	{"extra string", "${if eq{a}{b}{y}{n}{z}}", 19, `=expected "}" after the "no" string in "${if" opened at offset 0, found "{"`},
	{"junk after condition", "${if eq{a}{b} x}", 14, `expected "{" or "}" after the condition`},
	{"unknown variable", "x $sendr_address y", 2, "=unknown variable $sendr_address: did you mean $sender_address?"},
	{"unknown braced variable", "${nosuchvar}", 0, "=unknown variable $nosuchvar"},
	{"unknown condition", "${if eqq{a}{b}}", 5, `=unknown condition "eqq" in ${if}: did you mean "eq"?`},
	{"unknown condition no hint", "${if frobnicate{a}{b}}", 5, `=unknown condition "frobnicate" in ${if}`},
	{"unknown def typo", "${if deff:x{y}}", 5, `=unknown condition "deff" in ${if}: did you mean "def"?`},
	{"unknown symbol condition", "${if =>{1}{2}}", 5, `unknown condition "=>" in ${if}: did you mean`},
	{"missing condition", "${if {a}}", 5, `=expected a condition such as "eq" or "def:" in "${if", found "{"`},
	{"missing condition at end", "${if ", 0, `="${if" opened here is not complete: expected a condition, found the end of the string`},
	{"unknown operator", "${lcc:x}", 2, `=unknown operator "lcc": did you mean "lc"?`},
	{"unknown operator length", "${lenght_3:x}", 2, `=unknown operator "lenght_3": did you mean "length_3"?`},
	{"unknown operator no hint", "${frob:x}", 2, `=unknown operator "frob"`},
	{"bad length", "${length_x:abc}", 2, `="length_" must be followed by a number of bytes, as in "${length_10:...}"`},
	{"operator as item", "${lc{x}}", 2, `="lc" is an operator: write "${lc:STRING}"`},
	{"unknown item", "${lookpu{a}lsearch{/x}}", 2, `=unknown expansion item "${lookpu": did you mean "lookup"?`},
	{"if without space", "${ifeq{a}{b}}", 4, `=missing white space after "${if": write "${if eq..."`},
	{"bad char after name", "${foo!}", 5, `=expected "}" (variable) or ":" (operator) after "${foo", found "!"`},
	{"empty item", "${}", 2, `=expected a variable name, an operator or an item such as "if" after "${", found "}"`},
	{"unknown lookup", "${lookup{k}lsaerch{/x}}", 11, `=unknown lookup type "lsaerch": did you mean "lsearch"?`},
	{"missing lookup type", "${lookup{k}{/x}}", 11, `=expected a lookup type such as "lsearch" after the key of "${lookup", found "{"`},
	{"bad regex", "${if match{a}{(x}}", 14, "=invalid regular expression in \"match\": error parsing regexp: missing closing ): `(x`"},
	{"bad sg regex", "${sg{a}{x**}{y}}", 8, "=invalid regular expression in \"${sg\": error parsing regexp: invalid nested repetition operator: `**`"},
	{"capture outside", "a $1", 2, `=$1 is set only by a match condition: in the "yes" string of its ${if} and in the conditions after it in an "and", and in the replacement string of ${sg}`},
	{"capture in no", "${if match{a}{(a)}{y}{$1}}", 22, `$1 is set only`},
	{"capture after negated match", "${if !match{a}{(b)}{$1}}", 20, `$1 is set only`},
	{"capture in condition", "${if match{$1}{a}}", 11, `$1 is set only`},
	{"capture before match in and", "${if and{{eq{$1}{a}}{match{a}{(a)}}}}", 13, `$1 is set only`},
	{"capture in or after match", "${if or{{match{a}{(a)}}{eq{$1}{a}}}}", 27, `$1 is set only`},
	{"braced capture outside", "${0}", 0, `$0 is set only`},
	{"capture too big", "${if match{a}{(a)}{$12}}", 19, "=$12 does not exist: the numeric variables are $0 to $9"},
	{"unterminated protect", `ab\Ncd`, 2, `=missing "\N" to close the "\N" opened here`},
	{"lone dollar", "cost: $", 6, `="$" must be followed by a variable name or "{", found the end of the string; write "\$" for a literal dollar sign`},
	{"dollar space", "$ 5", 0, `"$" must be followed by a variable name or "{", found " "`},
	{"header without colon", "x $h_Subject y", 2, `=header variable "$h_Subject" must end with ":" after the header name, as in "$h_Subject:"; found " "`},
	{"header braced without colon", "${h_Subject}", 0, `header variable "${h_Subject" must end with ":"`},
	{"header braced junk", "${h_Subject:x}", 12, `=expected "}" after the header name in "${h_Subject:" opened at offset 0, found "x"`},
	{"header empty name", "$h_:", 0, `=missing header name in "$h_:"`},
	{"def with dollar", "${if def:$num{y}}", 9, `=write the variable after "def:" without "$", as in "def:sender_address"`},
	{"def unknown", "${if def:nosuch{y}}", 9, "=unknown variable $nosuch"},
	{"def no colon", "${if def num}", 8, `=expected ":" after "def", as in "def:sender_address", found " "`},
	{"def no name", "${if def:{y}}", 9, `=expected a variable name after "def:", found "{"`},
	{"and without braces", "${if and{eq{a}{b}}}", 9, `expected "{" to start a condition in the list of conditions of "and" (each condition goes in its own braces: "and{{COND1}{COND2}}"), found "e"`},
	{"and empty", "${if and{}}", 8, `=the list of conditions of "and" is empty`},
	{"or not a list", "${if or eq{a}{b}}", 8, `expected "{" to start the list of conditions of "or"`},
	{"unterminated and", "${if and{{eq{a}{b}}", 8, `=missing "}" to close the list of conditions of "and" opened here`},
	{"unterminated sub condition", "${if and{{eq{a}{b}", 9, `=missing "}" to close the condition opened here in the list of conditions of "and"`},
	{"sg missing replacement", "${sg{a}{b}}", 10, `=expected "{" to start the replacement of "${sg", found "}"`},
}

func TestCompileErrors(t *testing.T) {
	for _, tc := range compileErrCases {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Compile(tc.src, testScope{})
			if err == nil {
				t.Fatalf("Compile(%q) succeeded: %s", tc.src, e)
			}
			if !errors.Is(err, ErrSyntax) {
				t.Errorf("errors.Is(err, ErrSyntax) is false for %v", err)
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %T %v is not an *Error", err, err)
			}
			if ce.Offset != tc.offset {
				t.Errorf("offset = %d, want %d (%s)", ce.Offset, tc.offset, ce.Msg)
			}
			if whole, ok := strings.CutPrefix(tc.msg, "="); ok {
				if ce.Msg != whole {
					t.Errorf("message\n got %s\nwant %s", ce.Msg, whole)
				}
			} else if !strings.Contains(ce.Msg, tc.msg) {
				t.Errorf("message %q does not contain %q", ce.Msg, tc.msg)
			}
		})
	}
}

func TestHeadersUnavailable(t *testing.T) {
	_, err := Compile("${if def:h_From:{$h_Subject:}}", testScope{noHeaders: true})
	errs := splitErrors(err)
	if len(errs) != 2 {
		t.Fatalf("got %v, want 2 errors", err)
	}
	for i, off := range []int{9, 17} {
		if errs[i].Offset != off || !strings.Contains(errs[i].Msg, "at the RCPT stage") {
			t.Errorf("error %d = %v, want offset %d", i, errs[i], off)
		}
	}
	if _, err := Compile("$h_From:", nil); err == nil || !strings.Contains(err.Error(), "header variables are not available here") {
		t.Errorf("nil scope: %v", err)
	}
	if _, err := Compile("$x", nil); err == nil || !strings.Contains(err.Error(), "unknown variable $x") {
		t.Errorf("nil scope: %v", err)
	}
}

func splitErrors(err error) []*Error {
	var out []*Error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, splitErrors(e)...)
		}
		return out
	}
	var ce *Error
	if errors.As(err, &ce) {
		out = append(out, ce)
	}
	return out
}

func TestMultipleErrors(t *testing.T) {
	src := "$nosuch ${lcc:x} ${if eqq{a}{b}{$1}} ${lookup{k}nokind{x}} ${if match{a}{(}}"
	_, err := Compile(src, testScope{})
	errs := splitErrors(err)
	want := []struct {
		off int
		msg string
	}{
		{0, "unknown variable $nosuch"},
		{10, `unknown operator "lcc"`},
		{22, `unknown condition "eqq"`},
		{32, "$1 is set only"},
		{48, `unknown lookup type "nokind"`},
		{73, "invalid regular expression"},
	}
	if len(errs) != len(want) {
		t.Fatalf("got %d errors, want %d: %v", len(errs), len(want), err)
	}
	for i, w := range want {
		if errs[i].Offset != w.off || !strings.Contains(errs[i].Msg, w.msg) {
			t.Errorf("error %d = %v; want offset %d, %q", i, errs[i], w.off, w.msg)
		}
	}
	if !errors.Is(err, ErrSyntax) {
		t.Error("joined error is not ErrSyntax")
	}
	// A structural error after others stops parsing but keeps them.
	_, err = Compile("$nosuch ${if eq{a}", testScope{})
	if errs := splitErrors(err); len(errs) != 2 || errs[1].Offset != 8 {
		t.Errorf("got %v", err)
	}
	// The number of errors is bounded.
	_, err = Compile(strings.Repeat("$nosuch ", 100), testScope{})
	if errs := splitErrors(err); len(errs) != maxErrors {
		t.Errorf("got %d errors, want %d", len(errs), maxErrors)
	}
}

// ---- String and Constant ----

func TestString(t *testing.T) {
	tests := []struct{ src, want string }{
		{"plain", `"plain"`},
		{"", `""`},
		{"a$sender_address${if eq{$dmarc_status}{reject}{R}{${lc:$h_Subject:}}}",
			`cat("a", var(sender_address), if(eq(var(dmarc_status), "reject"), "R", lc(h(Subject))))`},
		{`${if match{$sender_address}{^(.*)@}{$1}}`, `if(match(var(sender_address), "^(.*)@"), cap(1))`},
		{`${if match{$sender_address}{$pattern}}`, `if(match(var(sender_address), var(pattern)))`},
		{`${sg{$dots}{a+}{<$0>}}`, `sg(var(dots), "a+", cat("<", cap(0), ">"))`},
		{`${lookup{$sender_address}lsearch{/etc/x}{$value}{none}}`, `lookup(lsearch, var(sender_address), "/etc/x", value, "none")`},
		{`${lookup{k}map{x}}`, `lookup(map, "k", "x")`},
		{`${if and{{def:h_From:}{!isip{$client_ip}}}}`, `if(and(def(h(From)), not(isip(var(client_ip)))))`},
		{`${if or{{def:num}{>={$num}{1K}}}{y}}`, `if(or(def(var(num)), >=(var(num), "1K")), "y")`},
		{`${length_3:$rh_X:}${strlen:$bh_Y:}${domain:$num}${local_part:$num}${uc:$num}`,
			`cat(length(3, rh(X)), strlen(bh(Y)), domain(var(num)), local_part(var(num)), uc(var(num)))`},
		{`${if eqi{$num}{a}{x}}${if ne{$num}{b}}${if bool{$flag}}`, `cat(if(eqi(var(num), "a"), "x"), if(ne(var(num), "b")), if(bool(var(flag))))`},
		{"${uc:abc}${if eq{a}{a}{x}{y}}\\n", `"ABCx\n"`},
		{"${if eq{a}{a}{$num}{y}}", `var(num)`},
		{"${if eq{a}{b}{$num}{-$num-}}", `cat("-", var(num), "-")`},
		{"${if >{abc}{1}}", `if(>("abc", "1"))`},
	}
	for _, tc := range tests {
		t.Run(tc.src, func(t *testing.T) {
			e, err := Compile(tc.src, testScope{})
			if err != nil {
				t.Fatal(err)
			}
			if got := e.String(); got != tc.want {
				t.Errorf("String()\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestConstant(t *testing.T) {
	tests := []struct {
		src   string
		want  string
		isCon bool
	}{
		{"abc", "abc", true},
		{`a\$b`, "a$b", true},
		{"${lc:ABC}", "abc", true},
		{"${if match{abc}{(b)}{$1}}", "b", true},
		{`${sg{a.b}{\\.}{-}}`, "a-b", true},
		{"${if isip{::1}}", "true", true},
		{"${if and{{eq{a}{a}}{!eq{a}{b}}}{y}{n}}", "y", true},
		{"$num", "", false},
		{"${lc:$num}", "", false},
		{"${if def:num{y}{y}}", "", false},
		{"$h_Subject:", "", false},
		{"${lookup{a}lsearch{/x}}", "", false},
		{"${if >{abc}{1}}", "", false}, // the error is left for Eval
	}
	for _, tc := range tests {
		t.Run(tc.src, func(t *testing.T) {
			e, err := Compile(tc.src, testScope{})
			if err != nil {
				t.Fatal(err)
			}
			got, ok := e.Constant()
			if ok != tc.isCon || got != tc.want {
				t.Errorf("Constant() = %q, %v; want %q, %v (tree %s)", got, ok, tc.want, tc.isCon, e)
			}
		})
	}
}

// TestSgMatchesRegexp compares ${sg} with regexp.ReplaceAllStringFunc on
// both of its search strategies.
func TestSgMatchesRegexp(t *testing.T) {
	subjects := []string{"", "a", "abc", "aaa", "a b  c", "héllo wörld", "x\ny\nz", "abab", "ba",
		"é a", "\xffa b", "\xe2a\xe2", "aé\nb", "\n\n", "ab\xc3"}
	regexes := []string{"", "a", "a*", "x*", "b*", "a|b", "(a)(b)?", ".", "\\s+", "^", "$", "^a", "a$",
		"\\b", "\\B", "(?m)^", "(?m)$", "[^a]*", "é|ö", "\\ba", "(?m)^.", "\\Bb", "^|a", "(?i)\\bA",
		"\\b\\w", "(\\b)|(x)", "\\A.", "(?s).", "\\z", "[^\\n]*"}
	for _, re := range regexes {
		rx := regexp.MustCompile(re)
		e, err := Compile(`${sg{$subj}{\N`+re+`\N}{<$0>}}`, mapScope{"subj"})
		if err != nil {
			t.Fatalf("%q: %v", re, err)
		}
		for _, s := range subjects {
			want := rx.ReplaceAllStringFunc(s, func(m string) string { return "<" + m + ">" })
			got, err := e.evalTest(&testEnv{vars: map[string]string{"subj": s}})
			if err != nil || got != want {
				t.Errorf("sg(%q, %q) = %q, %v; want %q", s, re, got, err, want)
			}
		}
	}
}

// FuzzSg compares ${sg} with regexp.ReplaceAllStringFunc.
func FuzzSg(f *testing.F) {
	f.Add("a b", `\b`)
	f.Add("é a\nb", `(?m)^.|\B`)
	f.Add("\xe2a", `\ba*`)
	f.Fuzz(func(t *testing.T, subj, re string) {
		rx, err := regexp.Compile(re)
		if err != nil || len(subj) > 1000 {
			return
		}
		e, err := Compile(`${sg{$subj}{$re}{<$0>}}`, mapScope{"subj", "re"})
		if err != nil {
			t.Fatal(err)
		}
		want := rx.ReplaceAllStringFunc(subj, func(m string) string { return "<" + m + ">" })
		got, err := e.evalTest(&testEnv{vars: map[string]string{"subj": subj, "re": re}})
		if errors.Is(err, ErrOutputTooLarge) && len(want) > DefaultMaxOutput {
			return
		}
		if err != nil || got != want {
			t.Fatalf("sg(%q, %q) = %q, %v; want %q", subj, re, got, err, want)
		}
	})
}

func TestSgCancelled(t *testing.T) {
	e, err := Compile(`${sg{$subj}{[a-z]*X|a}{}}`, mapScope{"subj"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	env := &testEnv{ctx: ctx, vars: map[string]string{"subj": strings.Repeat("a", 60000)}}
	start := time.Now()
	_, err = e.evalTest(env)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v to notice the cancelled context", d)
	}
}

// mapScope has the variables named, read from testEnv.vars.
type mapScope []string

func (m mapScope) Var(name string) (Getter, error) {
	for _, n := range m {
		if n == name {
			return func(_ context.Context, env Env) (string, error) { return env.(*testEnv).vars[name], nil }, nil
		}
	}
	return nil, fmt.Errorf("unknown variable $%s", name)
}

func (mapScope) Headers() error { return nil }

// TestConcurrentEval runs one compiled string from many goroutines (run
// with -race), including the cache of a dynamic regex.
func TestConcurrentEval(t *testing.T) {
	e, err := Compile(`${if match{$sender_address}{$re}{${sg{$sender_address}{$re}{[$0]}}}{no}}`, mapScope{"sender_address", "re"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				re := []string{"a", "b", "c+"}[(g+i)%3]
				env := &testEnv{vars: map[string]string{"sender_address": "abc", "re": re}}
				want := regexp.MustCompile(re).ReplaceAllString("abc", "[$0]")
				got, err := e.evalTest(env)
				if err != nil || got != want {
					t.Errorf("re %q: got %q, %v; want %q", re, got, err, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// ---- lookups ----

func TestRegisterLookupPanics(t *testing.T) {
	for _, kind := range []string{"", "bad kind", "x{"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("RegisterLookup(%q) did not panic", kind)
				}
			}()
			RegisterLookup(kind, func(context.Context, Env, string, string) (string, bool, error) { return "", false, nil })
		}()
	}
}

const lsearchText = `# aliases
alice: A value
Bob   second value
"quoted key: x"  quoted value
carol:
  continued line one
	and two   
# a comment does not end a value
  and three

dave:d1
"esc\"aped\\": e
empty
   
ALICE: duplicate ignored
trailing:    spaces   
windows: crlf` + "\r\n" + `last: no newline`

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLsearch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "aliases")
	writeFile(t, path, lsearchText)
	tests := []struct {
		key, want string
		found     bool
	}{
		{"alice", "A value", true},
		{"ALICE", "A value", true},
		{"bob", "second value", true},
		{"quoted key: x", "quoted value", true},
		{"QUOTED KEY: X", "quoted value", true},
		{"carol", "continued line one and two and three", true},
		{"dave", "d1", true},
		{`esc"aped\`, "e", true},
		{"empty", "", true},
		{"trailing", "spaces", true},
		{"windows", "crlf", true},
		{"last", "no newline", true},
		{"nobody", "", false},
		{"#", "", false},
		{"", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.key, func(t *testing.T) {
			v, found, err := lsearch(context.Background(), nil, tc.key, path)
			if err != nil || found != tc.found || v != tc.want {
				t.Errorf("lsearch(%q) = %q, %v, %v; want %q, %v", tc.key, v, found, err, tc.want, tc.found)
			}
		})
	}
	// Through an expansion, with yes/no strings.
	e, err := Compile("${lookup{$k}lsearch{"+path+"}{<$value>}{none}}", mapScope{"k"})
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"Bob": "<second value>", "zed": "none", "empty": "<>"} {
		got, err := e.evalTest(&testEnv{vars: map[string]string{"k": k}})
		if err != nil || got != want {
			t.Errorf("key %q: got %q, %v; want %q", k, got, err, want)
		}
	}
}

func TestLsearchReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "map")
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	write := func(text string, mtime time.Time) {
		writeFile(t, path, text)
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	get := func() string {
		t.Helper()
		v, _, err := lsearch(context.Background(), nil, "k", path)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	write("k: one\n", t0)
	if v := get(); v != "one" {
		t.Fatalf("got %q", v)
	}
	// Same size and mtime: the cached copy is used.
	write("k: two\n", t0)
	if v := get(); v != "one" {
		t.Fatalf("cache not used: got %q", v)
	}
	// A new mtime makes it read the file again.
	write("k: two\n", t0.Add(time.Second))
	if v := get(); v != "two" {
		t.Fatalf("after mtime change: got %q", v)
	}
	// So does a new size with the same mtime.
	write("k: three\n", t0.Add(time.Second))
	if v := get(); v != "three" {
		t.Fatalf("after size change: got %q", v)
	}
	// And a file replaced by rename.
	tmp := path + ".new"
	writeFile(t, tmp, "k: four!\n")
	if err := os.Chtimes(tmp, t0.Add(time.Second), t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	if v := get(); v != "four!" {
		t.Fatalf("after rename: got %q", v)
	}
}

func TestLsearchErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct{ name, arg, msg string }{
		{"missing", filepath.Join(dir, "none"), "no such file"},
		{"directory", dir, "is not a regular file"},
		{"relative", "relative/path", "not an absolute path"},
	}
	if os.Geteuid() != 0 {
		p := filepath.Join(dir, "secret")
		writeFile(t, p, "k: v\n")
		if err := os.Chmod(p, 0); err != nil {
			t.Fatal(err)
		}
		tests = append(tests, struct{ name, arg, msg string }{"unreadable", p, "permission denied"})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, found, err := lsearch(context.Background(), nil, "k", tc.arg)
			if err == nil || found || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("got found=%v err=%v; want error containing %q", found, err, tc.msg)
			}
		})
	}
}

// ---- suggestions ----

func TestSuggest(t *testing.T) {
	tests := []struct {
		name string
		want string
	}{
		{"eqq", `: did you mean "eq"?`},
		{"eqii", `: did you mean "eqi"?`},
		{"mtach", `: did you mean "match"?`},
		{"isip5", `: did you mean "isip"?`},
		{"isipv4", `: did you mean "isip4"?`},
		{"bol", `: did you mean "bool"?`},
		{"xyz", ""},
		{"eq", `: did you mean "eqi"?`}, // an exact name is never suggested
	}
	for _, tc := range tests {
		if got := suggest(tc.name, conditionNames); got != tc.want {
			t.Errorf("suggest(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// ---- benchmark ----

const benchSrc = `${if and{{eq{$dmarc_status}{reject}}{!def:authenticated_id}}{DMARC reject for ${lc:$dmarc_used_domain}}{ok}}`

func BenchmarkEval(b *testing.B) {
	e, err := Compile(benchSrc, testScope{})
	if err != nil {
		b.Fatal(err)
	}
	env := newEnv()
	if got, err := e.evalTest(env); err != nil || got != "DMARC reject for example.com" {
		b.Fatalf("got %q, %v", got, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.evalTest(env); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCompile(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(benchSrc, testScope{}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestMustCompile(t *testing.T) {
	e := MustCompile("${uc:$num}", testScope{})
	if e.Source() != "${uc:$num}" {
		t.Errorf("Source() = %q", e.Source())
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "unknown variable $nosuch") {
			t.Errorf("recover() = %v", r)
		}
	}()
	MustCompile("$nosuch", testScope{})
}

func TestHeaderTruncationKeepsUTF8(t *testing.T) {
	e := MustCompile("$h_X-Utf:", testScope{})
	big := strings.Repeat("é", 40000) // 80000 bytes
	got, err := e.evalTest(&testEnv{headers: []testHeader{{"X-Utf", big}, {"X-Utf", "more"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != maxHeaderValue || !strings.HasPrefix(big, got) {
		t.Errorf("got %d bytes, want %d bytes of the first field", len(got), maxHeaderValue)
	}
	got = truncateUTF8("a"+big, maxHeaderValue)
	if len(got) != maxHeaderValue-1 || !utf8ValidString(got) {
		t.Errorf("truncateUTF8 split a character: %d bytes", len(got))
	}
}

func utf8ValidString(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

func TestInvalidUTF8InMessages(t *testing.T) {
	_, err := Compile("${foo\xff}", testScope{})
	if err == nil || !strings.Contains(err.Error(), `found byte 0xff`) {
		t.Errorf("got %v", err)
	}
	_, err = Compile("${fooé}", testScope{})
	if err == nil || !strings.Contains(err.Error(), `found "é"`) {
		t.Errorf("got %v", err)
	}
}
