//go:build linux

package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"github.com/tcpscope/tcpscope/tracer"
)

// errEmptyValue: an empty value never means "no filter" or "the default".
// A script with an unset variable (--port "$PORT") would otherwise trace
// everything.
var errEmptyValue = errors.New("empty value")

// stringValue is a string flag that rejects an empty value, optionally a
// value outside a fixed set, and optionally being given twice with
// different values (the same value twice is harmless, and cobra parses
// the flags twice when it completes).
type stringValue struct {
	p       *string
	allowed []string // nil: any non-empty value
	once    string   // non-empty: given twice is an error, with this advice
	set     bool
}

func newStringValue(p *string, def string, allowed ...string) *stringValue {
	*p = def
	return &stringValue{p: p, allowed: allowed}
}

// Set implements pflag.Value.
func (v *stringValue) Set(s string) error {
	switch {
	case s == "":
		return errEmptyValue
	case v.once != "" && v.set && s != *v.p:
		return fmt.Errorf("given twice (first %s): %s", tracer.QuoteArg(*v.p), v.once)
	case v.allowed != nil && !slices.Contains(v.allowed, s):
		return fmt.Errorf("want %s", orList(v.allowed))
	}
	*v.p, v.set = s, true
	return nil
}

func (v *stringValue) String() string { return *v.p }

// Type implements pflag.Value.
func (v *stringValue) Type() string { return "string" }

// listValue is a repeatable flag. With split, each value may also hold a
// comma-separated list ("80,443"). An empty value or list item is an
// error. The first value given replaces the default.
type listValue struct {
	p       *[]string
	split   bool
	changed bool
}

func newListValue(p *[]string, split bool, def ...string) *listValue {
	*p = def
	return &listValue{p: p, split: split}
}

// Set implements pflag.Value.
func (v *listValue) Set(s string) error {
	items := []string{s}
	if v.split {
		items = strings.Split(s, ",")
	}
	for _, item := range items {
		if item == "" || v.split && strings.TrimSpace(item) == "" {
			if len(items) > 1 {
				return errors.New("empty item in the list")
			}
			return errEmptyValue
		}
	}
	if !v.changed {
		*v.p, v.changed = nil, true
	}
	*v.p = append(*v.p, items...)
	return nil
}

// String is "" for an empty list, so that --help shows no default.
func (v *listValue) String() string {
	if len(*v.p) == 0 {
		return ""
	}
	return "[" + strings.Join(*v.p, ",") + "]"
}

// Type implements pflag.Value.
func (v *listValue) Type() string {
	if v.split {
		return "strings"
	}
	return "stringArray"
}

// orList formats {"a", "b", "c"} as "a, b or c".
func orList(s []string) string {
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// flagError turns pflag's parse errors into usage errors whose message
// names the flag and echoes what was given escaped and shortened: pflag's
// own messages print unknown flag names raw and values in full.
func flagError(err error) error {
	var (
		invalid  *pflag.InvalidValueError
		notExist *pflag.NotExistError
		required *pflag.ValueRequiredError
		syntax   *pflag.InvalidSyntaxError
		msg      string
	)
	switch {
	case errors.As(err, &invalid):
		f := invalid.GetFlag()
		msg = fmt.Sprintf("bad %s %s: %s", flagName(f), tracer.QuoteArg(invalid.GetValue()), valueProblem(f, invalid.Unwrap()))
	case errors.As(err, &notExist):
		name := notExist.GetSpecifiedName()
		if sh := notExist.GetSpecifiedShortnames(); sh != "" {
			msg = fmt.Sprintf("unknown shorthand flag %s in %s", tracer.QuoteArg("-"+name[:1]), tracer.QuoteArg("-"+sh))
		} else {
			msg = "unknown flag " + tracer.QuoteArg("--"+name)
		}
	case errors.As(err, &required):
		msg = fmt.Sprintf("flag %s needs a value", flagName(required.GetFlag()))
	case errors.As(err, &syntax):
		msg = "bad flag syntax " + tracer.QuoteArg(syntax.GetSpecifiedFlag())
	default:
		return usageError{err}
	}
	return usageError{errors.New(msg)}
}

// flagName is "--name", or "-n/--name" for a flag with a shorthand.
func flagName(f *pflag.Flag) string {
	if f == nil {
		return "flag"
	}
	if f.Shorthand != "" {
		return "-" + f.Shorthand + "/--" + f.Name
	}
	return "--" + f.Name
}

// valueProblem says what is wrong with a flag's value without repeating
// it (pflag's causes for numbers and durations quote it in full).
func valueProblem(f *pflag.Flag, cause error) string {
	if errors.Is(cause, errEmptyValue) {
		return "empty value"
	}
	if f != nil {
		switch f.Value.Type() {
		case "int", "int64", "uint", "uint64":
			return "want a whole number"
		case "duration":
			return "want a duration such as 100ms, 2s or 10m"
		case "bool":
			return "want true or false"
		}
	}
	if cause == nil {
		return "invalid"
	}
	return oneLine(cause.Error())
}
