//go:build linux

package main

import (
	"io"
	"log/slog"
	"sync/atomic"
)

// app is what every command shares: the output streams and the one
// slog logger on stderr, which also reports the error that ends the
// process, so that a log pipeline sees one format (--log-format).
type app struct {
	stdout, stderr io.Writer
	logFormat      string                      // "text" or "json", from --log-format
	logger         atomic.Pointer[slog.Logger] // set once the flags are parsed
}

// newLogger builds the logger for --log-format (and --debug) and makes it
// the app's.
func (a *app) newLogger(debug bool) *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	if debug {
		opts.Level = slog.LevelDebug
	}
	var h slog.Handler
	if a.logFormat == "json" {
		h = slog.NewJSONHandler(a.stderr, opts)
	} else {
		h = slog.NewTextHandler(a.stderr, opts)
	}
	l := slog.New(h)
	a.logger.Store(l)
	return l
}

// log returns the app's logger, or a text logger when the command line
// was not parsed far enough to build one. It is safe to call from another
// goroutine (the signal handler).
func (a *app) log() *slog.Logger {
	if l := a.logger.Load(); l != nil {
		return l
	}
	return slog.New(slog.NewTextHandler(a.stderr, nil))
}

// logError reports the error that ends the process at level ERROR, on
// one line, with the exit status it causes.
func (a *app) logError(err error) {
	if a.logger.Load() == nil && (a.logFormat == "json" || a.logFormat == "text") {
		// The flags failed after --log-format was parsed: honour it.
		a.newLogger(false)
	}
	a.log().Error(oneLine(err.Error()), "exit_status", exitCode(err))
}
