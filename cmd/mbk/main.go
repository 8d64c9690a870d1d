// Command mbk is the backup engine's command line.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/mbk-backup/mbk/core/sdk"
)

func main() {
	sdk.LeanGC()
	if code := exitCode(newRootCmd().Execute()); code != 0 {
		os.Exit(code)
	}
}

// exitCode prints a command's error, if any, and returns its exit code.
func exitCode(err error) int {
	var ec *exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ec):
		if ec.msg != "" {
			fmt.Fprintln(os.Stderr, "mbk:", ec.msg)
		}
		return ec.code
	default:
		// cobra's own errors: usage mistakes.
		fmt.Fprintln(os.Stderr, "mbk:", err)
		return 2
	}
}

// exitError carries an exit code up to main.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func exitf(code int, format string, args ...any) error {
	return &exitError{code: code, msg: fmt.Sprintf(format, args...)}
}

// signalContext ends when SIGINT or SIGTERM arrives, with the signal as the
// cause, so that a stopped run says why it stopped.
func signalContext(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case s := <-ch:
			cancel(fmt.Errorf("received %s", s))
		case <-ctx.Done():
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		cancel(context.Canceled)
	}
}
