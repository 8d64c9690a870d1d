package pluginhost

import (
	"fmt"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// quiet demotes go-plugin's report of a plugin process ending normally to
// debug: every run ends every plugin, and saying so at info level drowns the
// run's own lines. An abnormal exit is logged by go-plugin as an error and
// stays one.
type quiet struct{ hclog.Logger }

func (q quiet) Info(msg string, args ...any) {
	if msg == "plugin process exited" {
		q.Logger.Debug(msg, args...)
		return
	}
	q.Logger.Info(msg, args...)
}

// Error demotes go-plugin's report that a built-in plugin's server stopped
// listening when the host stopped it: that is its normal end.
func (q quiet) Error(msg string, args ...any) {
	if msg == "grpc server" && strings.Contains(fmt.Sprint(args...), "use of closed network connection") {
		q.Logger.Debug(msg, args...)
		return
	}
	q.Logger.Error(msg, args...)
}

func (q quiet) Named(name string) hclog.Logger { return quiet{q.Logger.Named(name)} }

func (q quiet) With(args ...any) hclog.Logger { return quiet{q.Logger.With(args...)} }
