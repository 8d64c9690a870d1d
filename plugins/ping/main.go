// Command mbk-plugin-ping is a dead-man notifier: it pings a URL-based check
// (healthchecks.io, Uptime Kuma's push monitors, any heartbeat URL) when a
// run starts, succeeds or fails, so that a check which stops hearing from
// mbk alerts by itself: cron stopped, the server was rebuilt, the daemon
// died. Like the webhook, it is built on the public SDK alone.
package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/sdk"
)

const version = "1.0.0"

type ping struct{ log hclog.Logger }

type settings struct {
	URL     string `cty:"url"`
	Style   string `cty:"style"`
	Warning string `cty:"warning"`
	Retries int    `cty:"retries"`
}

// Styles: how each event becomes a request.
const (
	// healthchecks: URL/start, URL, URL/fail and URL/log, POSTed with a
	// body the check shows (the log tail on failure).
	styleHealthchecks = "healthchecks"
	// uptime-kuma: a push monitor's URL with ?status=up|down&msg=…&ping=…;
	// it has no start signal.
	styleKuma = "uptime-kuma"
	// plain: a GET of the URL on success only: the check alerts when it
	// stops hearing from mbk (Cronitor heartbeats, Dead Man's Snitch, …).
	stylePlain = "plain"
)

var styles = []string{styleHealthchecks, styleKuma, stylePlain}

var schema = sdk.Schema{
	Attributes: []sdk.Attribute{
		{Name: "url", Type: sdk.String, Required: true, Sensitive: true,
			Description: "The check's ping URL, e.g. https://hc-ping.com/<uuid> or https://kuma.example.org/api/push/<token>. Sensitive: whoever knows it can ping the check."},
		{Name: "style", Type: sdk.String, Default: cty.StringVal(styleHealthchecks),
			Description: "healthchecks (URL/start, URL, URL/fail), uptime-kuma (?status=up|down) or plain (a GET of the URL on success only)."},
		{Name: "warning", Type: sdk.String, Default: cty.StringVal("failure"),
			Description: "How a warning (the set kept, but something after it failed, or it is suspiciously small) is pinged: failure or success."},
		{Name: "retries", Type: sdk.Int, Default: cty.NumberIntVal(4),
			Description: "Tries after the first when the check cannot be reached or answers 5xx or 429, with back-off (1s, 2s, 4s, …), within the stage's timeout."},
	},
	// A check learns of the start (and so measures the run), of every
	// outcome, and not of drills: a drill that passed is not a backup.
	Events: []string{sdk.EventStart, sdk.EventSuccess, sdk.EventFailure, sdk.EventWarning},
}

var (
	_ sdk.Notifier  = (*ping)(nil)
	_ sdk.Validator = (*ping)(nil)
)

func (p *ping) Describe() sdk.Info {
	return sdk.Info{Name: "ping", Version: version, Kinds: []string{sdk.KindNotify},
		Description: "Pings a dead-man check (healthchecks.io, Uptime Kuma, any heartbeat URL) at start, on success and on failure."}
}

func (p *ping) Schema(string) (sdk.Schema, error) { return schema, nil }

func (p *ping) ValidateConfig(_ context.Context, cfg sdk.Config) sdk.Diagnostics {
	var s settings
	if err := cfg.Decode(&s); err != nil {
		return sdk.Diagnostics{sdk.Errorf("", "%v", err)}
	}
	var ds sdk.Diagnostics
	if u, err := url.Parse(s.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// Not the value: it is a secret.
		ds = append(ds, sdk.Errorf("url", "must be an http:// or https:// URL"))
	}
	if !slices.Contains(styles, s.Style) {
		ds = append(ds, sdk.Errorf("style", "is one of %s, not %q", strings.Join(styles, ", "), s.Style))
	}
	if s.Warning != sdk.EventFailure && s.Warning != sdk.EventSuccess {
		ds = append(ds, sdk.Errorf("warning", "is failure or success, not %q", s.Warning))
	}
	if s.Retries < 0 || s.Retries > 20 {
		ds = append(ds, sdk.Errorf("retries", "is from 0 to 20, not %d", s.Retries))
	}
	return ds
}

// signal is what an event means to a check.
type signal string

const (
	sigStart   signal = "start"
	sigSuccess signal = "success"
	sigFailure signal = "failure"
	sigLog     signal = "log" // a test: seen, but no change of state
)

func signalOf(event string, r sdk.Report, s settings) signal {
	switch event {
	case sdk.EventStart:
		return sigStart
	case sdk.EventTest:
		return sigLog
	case sdk.EventWarning:
		return signal(s.Warning)
	case sdk.EventFailure:
		return sigFailure
	case sdk.EventDrill:
		if r.Status == sdk.EventFailure {
			return sigFailure
		}
	}
	return sigSuccess
}

func (p *ping) Notify(ctx context.Context, cfg sdk.Config, event string, r sdk.Report) (string, error) {
	var s settings
	if err := cfg.Decode(&s); err != nil {
		return "", err
	}
	u, err := url.Parse(s.URL)
	if err != nil || u.Host == "" {
		return "", errors.New("the url setting is not a URL")
	}
	sig := signalOf(event, r, s)
	req, skip := request(s.Style, u, sig, r)
	if skip != "" {
		p.log.Info("not pinged", "event", event, "host", u.Host, "why", skip)
		return fmt.Sprintf("%s: not pinged (%s)", u.Host, skip), nil
	}
	status, err := send(ctx, p.log, req, s.Retries)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("pinged %s: %s (%s)", u.Host, sig, status), nil
}

// pingReq is one ping, before it is sent (and maybe sent again).
type pingReq struct {
	method string
	url    *url.URL
	body   string
}

// request makes the ping a style sends for a signal, or says why the style
// sends none.
func request(style string, base *url.URL, sig signal, r sdk.Report) (pingReq, string) {
	u := *base
	switch style {
	case styleKuma:
		if sig == sigStart {
			return pingReq{}, "Uptime Kuma push monitors have no start signal"
		}
		q := u.Query()
		q.Set("status", "up")
		msg := "OK " + r.Set
		switch sig {
		case sigFailure:
			q.Set("status", "down")
			msg = firstLine(r.Error)
		case sigLog:
			msg = "mbk test"
		}
		q.Set("msg", truncate(strings.TrimSpace("mbk "+r.Pipeline+": "+msg), 200))
		if d := r.Duration(); d > 0 && sig != sigLog {
			q.Set("ping", strconv.FormatInt(d.Milliseconds(), 10))
		}
		u.RawQuery = q.Encode()
		return pingReq{method: http.MethodGet, url: &u}, ""
	case stylePlain:
		if sig != sigSuccess && sig != sigLog {
			return pingReq{}, "a plain check hears of successes only: its silence is the alarm"
		}
		return pingReq{method: http.MethodGet, url: &u}, ""
	}
	switch sig {
	case sigStart:
		u.Path = strings.TrimSuffix(u.Path, "/") + "/start"
	case sigFailure:
		u.Path = strings.TrimSuffix(u.Path, "/") + "/fail"
	case sigLog:
		u.Path = strings.TrimSuffix(u.Path, "/") + "/log"
	}
	if sig != sigLog && !r.Started.IsZero() {
		// A run ID pairs a run's start with its end, so the check
		// measures each run even when two overlap.
		q := u.Query()
		q.Set("rid", runID(r))
		u.RawQuery = q.Encode()
	}
	return pingReq{method: http.MethodPost, url: &u, body: body(sig, r)}, ""
}

// runID is a UUID (RFC 9562 version 8: made of a hash) naming one run: the
// same for its start and its end.
func runID(r sdk.Report) string {
	h := sha256.Sum256([]byte(r.Host + "\x00" + r.File + "\x00" + r.Pipeline + "\x00" + r.Started.UTC().Format(time.RFC3339Nano)))
	h[6] = h[6]&0x0f | 0x80
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// maxBody keeps a ping's body well inside what checks keep (healthchecks.io
// keeps 100 kB).
const maxBody = 10000

// body is what the check shows with a ping: the run in a few lines, and on
// failure the error and the log tail.
func body(sig signal, r sdk.Report) string {
	var b strings.Builder
	if sig == sigLog {
		fmt.Fprintf(&b, "mbk test ping for pipeline %s from %s: if the check shows this, mbk reaches it.\n", r.Pipeline, r.Host)
		return b.String()
	}
	fmt.Fprintf(&b, "mbk %s: pipeline %s on %s\n", sig, r.Pipeline, r.Host)
	if r.Set != "" {
		fmt.Fprintf(&b, "set: %s\n", r.Set)
	}
	if d := r.Duration(); d > 0 {
		fmt.Fprintf(&b, "duration: %s\n", d.Round(time.Second))
	}
	for _, a := range r.Artifacts {
		fmt.Fprintf(&b, "file: %s (%d bytes)\n", a.File, a.Size)
	}
	if r.Error != "" {
		fmt.Fprintf(&b, "\nerror: %s\n", r.Error)
	}
	for _, w := range r.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", w)
	}
	if sig == sigFailure && len(r.LogTail) > 0 {
		b.WriteString("\nlast lines of the log:\n")
		for _, l := range r.LogTail {
			b.WriteString(l + "\n")
		}
	}
	// The end of the log says most: keep it when cutting.
	s := b.String()
	if len(s) > maxBody {
		s = "…" + s[len(s)-maxBody:]
	}
	return s
}

// Retry pacing: the first wait, and the longest.
var (
	firstBackoff = time.Second
	maxBackoff   = 30 * time.Second
	tryTimeout   = 30 * time.Second
)

// send pings, trying again when the check cannot be reached or answers 5xx
// or 429, waiting longer each time, and never past ctx's deadline: a wait
// that would end after it is not started.
func send(ctx context.Context, log hclog.Logger, pr pingReq, retries int) (string, error) {
	wait := firstBackoff
	for try := 0; ; try++ {
		status, retry, err := sendOnce(ctx, pr)
		if err == nil {
			log.Info("pinged", "host", pr.url.Host, "status", status, "tries", try+1)
			return status, nil
		}
		log.Warn("ping failed", "host", pr.url.Host, "try", try+1, "error", err)
		if !retry || try >= retries {
			return "", err
		}
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
			return "", fmt.Errorf("%w (no time left within the stage's timeout to try again)", err)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%w (then: %v)", err, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, maxBackoff)
	}
}

// sendOnce makes one request, within tryTimeout; retry says whether another
// may do better (not once the caller has given up).
func sendOnce(parent context.Context, pr pingReq) (status string, retry bool, err error) {
	ctx, cancel := context.WithTimeout(parent, tryTimeout)
	defer cancel()
	var body io.Reader
	if pr.body != "" {
		body = strings.NewReader(pr.body)
	}
	req, err := http.NewRequestWithContext(ctx, pr.method, pr.url.String(), body)
	if err != nil {
		return "", false, fmt.Errorf("ping %s: %v", pr.url.Host, hideURL(err))
	}
	req.Header.Set("User-Agent", "mbk-plugin-ping/"+version)
	if pr.body != "" {
		req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", parent.Err() == nil, fmt.Errorf("ping %s: %w", pr.url.Host, hideURL(err))
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	if resp.StatusCode/100 == 2 {
		return resp.Status, false, nil
	}
	retry = resp.StatusCode/100 == 5 || resp.StatusCode == http.StatusTooManyRequests
	return "", retry, fmt.Errorf("ping %s: the check answered %s: %s", pr.url.Host, resp.Status, strings.TrimSpace(string(snippet)))
}

// hideURL keeps the URL (its path or query holds the check's token) out of
// an error, leaving what went wrong.
func hideURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func main() {
	sdk.Main("ping", func(log hclog.Logger) sdk.Plugin { return &ping{log: log} })
}
