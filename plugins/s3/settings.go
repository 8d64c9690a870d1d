package main

import (
	"fmt"
	"net"
	"net/url"
	"path"
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/mbk-backup/mbk/core/sdk"
)

// settings is a decoded, defaulted and checked stage body.
type settings struct {
	Endpoint  string `cty:"endpoint"`
	Region    string `cty:"region"`
	Bucket    string `cty:"bucket"`
	Prefix    string `cty:"prefix"`
	AccessKey string `cty:"access_key"`
	SecretKey string `cty:"secret_key"`
	PathStyle *bool  `cty:"path_style"`
	CAFile    string `cty:"ca_file"`
	Insecure  bool   `cty:"insecure"`
	// ObjectLock is the object_lock block, nil without one.
	ObjectLock *objectLock `cty:"object_lock"`

	endpoint  string // a URL with its scheme; "" for AWS
	pathStyle bool
	lock      *lockSettings // the checked object_lock
}

type objectLock struct {
	Mode *string `cty:"mode"`
	Days *int    `cty:"days"`
}

// lockSettings is an object_lock block that passed its checks.
type lockSettings struct {
	mode types.ObjectLockMode
	days int
}

// maxLockDays bounds object_lock's days: a hundred years, S3's own limit.
const maxLockDays = 36500

// checkLock reads the object_lock block.
func checkLock(l *objectLock) (*lockSettings, sdk.Diagnostics) {
	if l == nil {
		return nil, nil
	}
	var d sdk.Diagnostics
	out := &lockSettings{}
	switch {
	case l.Mode == nil:
		d = append(d, sdk.Errorf("object_lock", "object_lock needs mode: \"governance\" (an account with s3:BypassGovernanceRetention may still delete) or \"compliance\" (no one may, until the date)"))
	case strings.EqualFold(*l.Mode, "governance"), strings.EqualFold(*l.Mode, "compliance"):
		out.mode = types.ObjectLockMode(strings.ToUpper(*l.Mode))
	default:
		d = append(d, sdk.Errorf("object_lock", "object_lock mode is \"governance\" or \"compliance\", not %q", *l.Mode))
	}
	switch {
	case l.Days == nil:
		d = append(d, sdk.Errorf("object_lock", "object_lock needs days: how long each object may not be deleted or overwritten"))
	case *l.Days < 1 || *l.Days > maxLockDays:
		d = append(d, sdk.Errorf("object_lock", "object_lock days is 1 to %d, not %d", maxLockDays, *l.Days))
	default:
		out.days = *l.Days
	}
	if d.HasErrors() {
		return nil, d
	}
	return out, nil
}

// load decodes and checks a config without touching the outside world. The
// settings are usable only when no diagnostic is an error.
func load(cfg sdk.Config) (settings, sdk.Diagnostics) {
	var s settings
	if err := cfg.Decode(&s); err != nil {
		return s, sdk.Diagnostics{sdk.Errorf("", "%v", err)}
	}
	var d sdk.Diagnostics
	if s.Region == "" {
		s.Region = defaultRegion
	}
	if err := checkBucket(s.Bucket); err != nil {
		d = append(d, sdk.Errorf("bucket", "%v", err))
	}
	prefix, err := cleanPrefix(s.Prefix)
	if err != nil {
		d = append(d, sdk.Errorf("prefix", "%v", err))
	}
	s.Prefix = prefix
	if (s.AccessKey == "") != (s.SecretKey == "") {
		d = append(d, sdk.Errorf("access_key", "access_key and secret_key go together: set both, or neither to use the environment and the AWS shared files"))
	}
	if s.Endpoint == "" {
		if s.Insecure {
			d = append(d, sdk.Errorf("insecure", "insecure = true needs an endpoint: AWS is reached over HTTPS only"))
		}
		s.pathStyle = s.PathStyle != nil && *s.PathStyle
	} else {
		ep, err := endpointURL(s.Endpoint, s.Insecure)
		if err != nil {
			d = append(d, sdk.Errorf("endpoint", "%v", err))
		}
		s.endpoint = ep
		// S3-compatible servers are mostly reached by address, where the
		// bucket cannot be a host name.
		s.pathStyle = s.PathStyle == nil || *s.PathStyle
	}
	lock, ld := checkLock(s.ObjectLock)
	d = append(d, ld...)
	s.lock = lock
	if s.Insecure && s.CAFile != "" {
		d = append(d, sdk.Diagnostic{Attribute: "ca_file", Summary: "ca_file is ignored: insecure = true makes no TLS connection"})
	}
	return s, d
}

// endpointURL turns "host[:port]" or a URL into a URL, its scheme agreeing
// with insecure.
func endpointURL(endpoint string, insecure bool) (string, error) {
	if !strings.Contains(endpoint, "://") {
		scheme := "https"
		if insecure {
			scheme = "http"
		}
		endpoint = scheme + "://" + endpoint
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", fmt.Errorf("endpoint %q is not host[:port] or a URL: %v", endpoint, err)
	}
	switch {
	case u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return "", fmt.Errorf("endpoint %q must be host[:port] or scheme://host[:port], nothing more", endpoint)
	case u.Scheme == "http" && !insecure:
		return "", fmt.Errorf("endpoint %q is plain HTTP, which shows the backups to anyone on the path: set insecure = true to allow it", endpoint)
	case u.Scheme == "https" && insecure:
		return "", fmt.Errorf("endpoint %q is HTTPS but insecure = true asks for plain HTTP: choose one", endpoint)
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("endpoint %q: the scheme must be https (or http with insecure = true)", endpoint)
	}
	return u.Scheme + "://" + u.Host, nil
}

var bucketChars = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]*[a-z0-9]$`)

// checkBucket applies the naming rules of general purpose buckets, which
// the other S3 services follow too.
func checkBucket(b string) error {
	switch {
	case b == "":
		return fmt.Errorf("bucket must name the bucket")
	case len(b) < 3 || len(b) > 63:
		return fmt.Errorf("bucket %q must be 3 to 63 characters long", b)
	case !bucketChars.MatchString(b):
		return fmt.Errorf("bucket %q may hold only lowercase letters, digits, dots and hyphens, and must begin and end with a letter or digit", b)
	case strings.Contains(b, ".."):
		return fmt.Errorf("bucket %q must not hold two dots in a row", b)
	case net.ParseIP(b) != nil:
		return fmt.Errorf("bucket %q must not look like an IP address", b)
	case strings.HasPrefix(b, "xn--") || strings.HasPrefix(b, "sthree-"):
		return fmt.Errorf("bucket %q starts with a reserved prefix", b)
	case strings.HasSuffix(b, "-s3alias") || strings.HasSuffix(b, "--ol-s3"):
		return fmt.Errorf("bucket %q ends with a reserved suffix", b)
	}
	return nil
}

// cleanPrefix checks a key prefix and drops its trailing slash.
func cleanPrefix(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	if strings.HasPrefix(p, "/") {
		return p, fmt.Errorf("prefix %q must not start with a slash: keys are relative to the bucket", p)
	}
	p = strings.TrimSuffix(p, "/")
	for _, el := range strings.Split(p, "/") {
		if el == "" || el == "." || el == ".." {
			return p, fmt.Errorf("prefix %q must not hold empty, . or .. parts", p)
		}
	}
	return p, nil
}

// key is the object key of a set's file: <prefix>/<set>/<file>.
func (s settings) key(set, file string) string { return path.Join(s.Prefix, set, file) }

// setPrefix is what every key of the set starts with.
func (s settings) setPrefix(set string) string { return path.Join(s.Prefix, set) + "/" }

// location names an object for people.
func (s settings) location(key string) string { return "s3://" + s.Bucket + "/" + key }
