package main

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/sdk"
)

func config(t *testing.T, attrs map[string]cty.Value) sdk.Config {
	t.Helper()
	cfg, err := sdk.NewConfig(sdk.KindNotify, schema, attrs)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func newPing() (*ping, *bytes.Buffer) {
	var log bytes.Buffer
	return &ping{log: hclog.New(&hclog.LoggerOptions{Output: &log, Level: hclog.Debug})}, &log
}

var started = time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)

func runReport(status string) sdk.Report {
	return sdk.Report{Pipeline: "production", Host: "moodle1", File: "/etc/mbk/p.hcl", Set: "2026-11-27_03-00-00", Status: status,
		Started: started, Finished: started.Add(90 * time.Second), Error: "dump \"mysql\" stage: Access denied\nsecond line",
		LogTail: []string{"03:00:01 dump started", "03:01:30 Access denied"}}
}

// fastRetries makes the back-off short for the test.
func fastRetries(t *testing.T) {
	first, most := firstBackoff, maxBackoff
	firstBackoff, maxBackoff = 10*time.Millisecond, 40*time.Millisecond
	t.Cleanup(func() { firstBackoff, maxBackoff = first, most })
}

func TestRetries(t *testing.T) {
	fastRetries(t)
	tests := []struct {
		name     string
		status   []int // what the check answers, in turn; then 200
		retries  int
		deadline time.Duration // 0: none
		wantHits int
		wantErr  string
	}{
		{name: "two 503s, then accepted", status: []int{503, 503}, retries: 4, wantHits: 3},
		{name: "429 is tried again", status: []int{429}, retries: 4, wantHits: 2},
		{name: "a 404 is not: the URL is wrong", status: []int{404}, retries: 4, wantHits: 1, wantErr: "404 Not Found"},
		{name: "gives up after the retries", status: []int{500, 500, 500}, retries: 2, wantHits: 3, wantErr: "500 Internal Server Error"},
		{name: "no wait past the stage's deadline", status: []int{503, 503, 503}, retries: 4, deadline: 25 * time.Millisecond, wantErr: "no time left"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, got := checkServer(t, func(n int) int {
				if n <= len(tt.status) {
					return tt.status[n-1]
				}
				return http.StatusOK
			})
			p, _ := newPing()
			cfg := config(t, map[string]cty.Value{"url": cty.StringVal(srv.URL + checkPath), "retries": cty.NumberIntVal(int64(tt.retries))})
			ctx := context.Background()
			if tt.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.deadline)
				defer cancel()
			}
			_, err := p.Notify(ctx, cfg, sdk.EventSuccess, runReport(sdk.EventSuccess))
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), checkPath) {
				t.Errorf("the error shows the URL: %v", err)
			}
			if tt.wantHits > 0 && len(got()) != tt.wantHits {
				t.Errorf("%d requests, want %d", len(got()), tt.wantHits)
			}
			if tt.deadline > 0 && len(got()) >= 1+tt.retries {
				t.Errorf("%d requests: it kept trying past the deadline", len(got()))
			}
		})
	}
}

// Each style turns the events into the requests its checks expect.
func TestStyles(t *testing.T) {
	tests := []struct {
		style, warning, event string
		status                string // the report's status (a drill's result)
		want                  string // METHOD path?query-keys, or "" for no request
	}{
		{styleHealthchecks, "failure", sdk.EventStart, "", "POST /start rid"},
		{styleHealthchecks, "failure", sdk.EventSuccess, "", "POST  rid"},
		{styleHealthchecks, "failure", sdk.EventWarning, "", "POST /fail rid"},
		{styleHealthchecks, "success", sdk.EventWarning, "", "POST  rid"},
		{styleHealthchecks, "failure", sdk.EventDrill, sdk.EventSuccess, "POST  rid"},
		{styleHealthchecks, "failure", sdk.EventTest, "", "POST /log "},
		{styleKuma, "failure", sdk.EventStart, "", ""},
		{styleKuma, "failure", sdk.EventSuccess, "", "GET  status=up msg ping"},
		{styleKuma, "failure", sdk.EventFailure, "", "GET  status=down msg ping"},
		{stylePlain, "failure", sdk.EventStart, "", ""},
		{stylePlain, "failure", sdk.EventFailure, "", ""},
		{stylePlain, "success", sdk.EventWarning, "", "GET  "},
		{stylePlain, "failure", sdk.EventSuccess, "", "GET  "},
	}
	for _, tt := range tests {
		t.Run(tt.style+" "+tt.event+" "+tt.warning, func(t *testing.T) {
			srv, got := checkServer(t, nil)
			p, _ := newPing()
			cfg := config(t, map[string]cty.Value{"url": cty.StringVal(srv.URL + checkPath), "style": cty.StringVal(tt.style), "warning": cty.StringVal(tt.warning)})
			if ds := p.ValidateConfig(context.Background(), cfg); len(ds) != 0 {
				t.Fatalf("refused: %v", ds)
			}
			rep := runReport(tt.event)
			if tt.status != "" {
				rep.Status = tt.status
			}
			summary, err := p.Notify(context.Background(), cfg, tt.event, rep)
			if err != nil {
				t.Fatal(err)
			}
			hits := got()
			if tt.want == "" {
				if len(hits) != 0 || !strings.Contains(summary, "not pinged") {
					t.Fatalf("want no ping, got %v (%s)", hits, summary)
				}
				return
			}
			if len(hits) != 1 {
				t.Fatalf("want one ping, got %v", hits)
			}
			h := hits[0]
			q, _ := url.ParseQuery(h.query)
			var keys []string
			for _, k := range []string{"rid", "status", "msg", "ping"} {
				if v := q.Get(k); v != "" {
					if k == "status" {
						keys = append(keys, k+"="+v)
					} else {
						keys = append(keys, k)
					}
				}
			}
			if g := h.method + " " + strings.TrimPrefix(h.path, checkPath) + " " + strings.Join(keys, " "); g != tt.want {
				t.Fatalf("got %q, want %q", g, tt.want)
			}
		})
	}
}

// A run's start and end carry the same run ID, so that healthchecks.io
// measures the run; another run has another.
func TestRunIDPairsStartAndEnd(t *testing.T) {
	srv, got := checkServer(t, nil)
	p, _ := newPing()
	cfg := config(t, map[string]cty.Value{"url": cty.StringVal(srv.URL + checkPath)})
	first := runReport(sdk.EventSuccess)
	second := first
	second.Started = second.Started.Add(24 * time.Hour)
	for _, c := range []struct {
		event string
		r     sdk.Report
	}{{sdk.EventStart, first}, {sdk.EventSuccess, first}, {sdk.EventStart, second}} {
		if _, err := p.Notify(context.Background(), cfg, c.event, c.r); err != nil {
			t.Fatal(err)
		}
	}
	var rids []string
	for _, h := range got() {
		q, _ := url.ParseQuery(h.query)
		rids = append(rids, q.Get("rid"))
	}
	if len(rids) != 3 || rids[0] == "" || rids[0] != rids[1] || rids[0] == rids[2] || len(rids[0]) != 36 {
		t.Fatalf("run IDs %q", rids)
	}
}

// The URL is the check's secret: not in the log, the summary or an error,
// nor in validate's verdict on a bad one.
func TestTheURLStaysSecret(t *testing.T) {
	fastRetries(t)
	srv, _ := checkServer(t, func(int) int { return http.StatusServiceUnavailable })
	p, log := newPing()
	secretURL := srv.URL + checkPath
	cfg := config(t, map[string]cty.Value{"url": cty.StringVal(secretURL), "retries": cty.NumberIntVal(1)})
	_, err := p.Notify(context.Background(), cfg, sdk.EventFailure, runReport(sdk.EventFailure))
	if err == nil {
		t.Fatal("a check answering 503 was taken as pinged")
	}
	bad := config(t, map[string]cty.Value{"url": cty.StringVal("ftp://example.org" + checkPath)})
	ds := p.ValidateConfig(context.Background(), bad)
	if len(ds) != 1 {
		t.Fatalf("an ftp:// URL was accepted: %v", ds)
	}
	for what, text := range map[string]string{"log": log.String(), "error": err.Error(), "diagnostic": ds[0].Summary + ds[0].Detail} {
		if strings.Contains(text, checkPath) || strings.Contains(text, "s3cr3t") {
			t.Errorf("the %s shows the URL's secret:\n%s", what, text)
		}
	}
	if !strings.Contains(log.String(), "ping failed") || !strings.Contains(log.String(), strings.TrimPrefix(srv.URL, "http://")) {
		t.Errorf("the failed pings are not logged with the check's host:\n%s", log)
	}
}
