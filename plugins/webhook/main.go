// Command mbk-plugin-webhook is the example of a notifier anyone can drop
// into mbk's plugin directory: it POSTs the run report to a URL, as JSON or
// through a template (for Slack-, Mattermost- and Teams-style webhooks).
//
// The whole plugin is this file: declare the schema, implement Notify, Serve.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"text/template"

	"github.com/hashicorp/go-hclog"
	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/sdk"
)

type webhook struct{ log hclog.Logger }

type settings struct {
	URL         string            `cty:"url"`
	Method      string            `cty:"method"`
	Headers     map[string]string `cty:"headers"`
	Template    string            `cty:"template"`
	ContentType string            `cty:"content_type"`
}

var schema = sdk.Schema{Attributes: []sdk.Attribute{
	{Name: "url", Type: sdk.String, Required: true, Sensitive: true,
		Description: "Where to send the report. Sensitive: incoming-webhook URLs embed their token."},
	{Name: "method", Type: sdk.String, Default: cty.StringVal("POST")},
	{Name: "headers", Type: sdk.Map(sdk.String), Description: "Extra request headers."},
	{Name: "template", Type: sdk.String,
		Description: "A Go text/template over the report producing the body; the JSON report when unset. The json function quotes a string: {\"text\": {{json .Pipeline}}}."},
	{Name: "content_type", Type: sdk.String, Default: cty.StringVal("application/json"),
		Description: "The body's Content-Type: JSON by default, as the report and the usual chat webhooks are; set it for a template that writes something else, e.g. text/plain."},
}}

var (
	_ sdk.Notifier  = (*webhook)(nil)
	_ sdk.Validator = (*webhook)(nil)
)

func (w *webhook) Describe() sdk.Info {
	return sdk.Info{Name: "webhook", Version: "1.0.0", Kinds: []string{sdk.KindNotify},
		Description: "POSTs the run report to a URL, as JSON or through a template."}
}

func (w *webhook) Schema(string) (sdk.Schema, error) { return schema, nil }

var funcs = template.FuncMap{
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
}

func (w *webhook) ValidateConfig(_ context.Context, cfg sdk.Config) sdk.Diagnostics {
	var s settings
	if err := cfg.Decode(&s); err != nil {
		return sdk.Diagnostics{sdk.Errorf("", "%v", err)}
	}
	var ds sdk.Diagnostics
	if u, err := url.Parse(s.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		ds = append(ds, sdk.Errorf("url", "must be an http:// or https:// URL"))
	}
	if mt, _, err := mime.ParseMediaType(s.ContentType); err != nil || !strings.Contains(mt, "/") {
		ds = append(ds, sdk.Errorf("content_type", "%q is not a media type such as application/json", s.ContentType))
	}
	if s.Template != "" {
		if _, err := template.New("body").Funcs(funcs).Parse(s.Template); err != nil {
			ds = append(ds, sdk.Errorf("template", "does not parse: %v", err))
		}
	}
	return ds
}

func (w *webhook) Notify(ctx context.Context, cfg sdk.Config, event string, r sdk.Report) (string, error) {
	var s settings
	if err := cfg.Decode(&s); err != nil {
		return "", err
	}
	var body bytes.Buffer
	if s.Template == "" {
		if err := json.NewEncoder(&body).Encode(struct {
			Event string `json:"event"`
			sdk.Report
		}{event, r}); err != nil {
			return "", err
		}
	} else {
		t, err := template.New("body").Funcs(funcs).Parse(s.Template)
		if err != nil {
			return "", err
		}
		if err := t.Execute(&body, r); err != nil {
			return "", fmt.Errorf("template: %w", err)
		}
	}
	req, err := http.NewRequestWithContext(ctx, s.Method, s.URL, &body)
	if err != nil {
		return "", fmt.Errorf("request: %w", redactURL(err, s.URL))
	}
	req.Header.Set("Content-Type", s.ContentType)
	req.Header.Set("User-Agent", "mbk-plugin-webhook/1.0")
	for k, v := range s.Headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", redactURL(err, s.URL)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	host := req.URL.Host
	// The host only: the URL's path and query often hold the token.
	w.log.Info("report sent", "event", event, "method", s.Method, "host", host, "status", resp.Status, "bytes", req.ContentLength)
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("%s answered %s: %s", host, resp.Status, strings.TrimSpace(string(snippet)))
	}
	return fmt.Sprintf("%s accepted the report (%s)", host, resp.Status), nil
}

// redactURL keeps a webhook's token (often in its path) out of errors.
func redactURL(err error, raw string) error {
	msg := err.Error()
	if u, perr := url.Parse(raw); perr == nil {
		msg = strings.ReplaceAll(msg, raw, u.Scheme+"://"+u.Host+"/…")
	}
	return fmt.Errorf("%s", msg)
}

func main() {
	sdk.Main("webhook", func(log hclog.Logger) sdk.Plugin { return &webhook{log: log} })
}
