package i18n

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/dustin/go-humanize"
	"golang.org/x/text/language"
)

func TestDetect(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	tests := []struct {
		name string
		flag string
		env  func(string) string
		want language.Tag
	}{
		{"nothing set", "", env(), English},
		{"LANG Spanish", "", env("LANG", "es_ES.UTF-8"), Spanish},
		{"LANG Argentinian", "", env("LANG", "es_AR"), Spanish},
		{"LANG bare es", "", env("LANG", "es"), Spanish},
		{"LANG with modifier", "", env("LANG", "es_ES@euro"), Spanish},
		{"LANG C", "", env("LANG", "C"), English},
		{"LANG POSIX", "", env("LANG", "POSIX"), English},
		{"LANG C.UTF-8", "", env("LANG", "C.UTF-8"), English},
		{"LANG French is English", "", env("LANG", "fr_FR.UTF-8"), English},
		{"LC_MESSAGES over LANG", "", env("LANG", "en_US.UTF-8", "LC_MESSAGES", "es_MX.UTF-8"), Spanish},
		{"LC_ALL over LC_MESSAGES", "", env("LC_ALL", "C", "LC_MESSAGES", "es_ES.UTF-8", "LANG", "es_ES.UTF-8"), English},
		{"LC_ALL Spanish", "", env("LC_ALL", "es_CL.UTF-8", "LANG", "en_US.UTF-8"), Spanish},
		{"empty LC_ALL is unset", "", env("LC_ALL", "", "LANG", "es_ES.UTF-8"), Spanish},
		{"flag over environment", "en", env("LC_ALL", "es_ES.UTF-8"), English},
		{"flag Spanish", "es", env("LANG", "C"), Spanish},
		{"flag as a locale", "es_ES.UTF-8", env(), Spanish},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Detect(tt.flag, tt.env)
			if err != nil || got != tt.want {
				t.Errorf("Detect(%q) = %v, %v; want %v", tt.flag, got, err, tt.want)
			}
		})
	}
	if _, err := Detect("fr", env()); err == nil || !strings.Contains(err.Error(), `"fr"`) || !strings.Contains(err.Error(), "en or es") {
		t.Errorf("Detect(fr) error = %v, want one naming fr and the two languages", err)
	}
}

func TestNumbersAndPlurals(t *testing.T) {
	en, es := New(English), New(Spanish)
	for _, tt := range []struct{ got, want string }{
		{es.T("%.1f MiB", 1234.5), "1.234,5 MiB"},
		{en.T("%.1f MiB", 1234.5), "1,234.5 MiB"},
		{es.Number(1234567), "1.234.567"},
		{en.Number(1234567), "1,234,567"},
		{es.IBytes(1288490189), "1,2 GiB"},
		{en.IBytes(1288490189), "1.2 GiB"},
		{en.IBytes(5), "5 B"},
		{en.IBytes(20 << 20), "20 MiB"},
		{es.T("%d set(s)", 1), "1 conjunto"},
		{es.T("%d set(s)", 3), "3 conjuntos"},
		{en.T("%d set(s)", 1), "1 set"},
		{en.T("%d set(s)", 3), "3 sets"},
		{es.T("%d set(s)", 1234), "1.234 conjuntos"},
		{es.T("Quit"), "Salir"},
		{en.T("Quit"), "Quit"},
		{For("es").Code(), "es"},
		{For("").Code(), "en"},
		{For("klingon").Code(), "en"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

// TestIBytesEnglishAsHumanize: English sizes read exactly as go-humanize
// wrote them before the catalogs, across the units and the rounding edges.
func TestIBytesEnglishAsHumanize(t *testing.T) {
	en := New(English)
	for _, n := range []uint64{0, 1, 9, 10, 999, 1023, 1024, 1025, 10239, 10240, 10291, 1 << 20, 1<<20 - 1, 1288490189, 10737418239,
		10<<30 - 52, 1 << 40, 1<<50 + 7, 1 << 62, ^uint64(0)} {
		if got, want := en.IBytes(n), humanize.IBytes(n); got != want {
			t.Errorf("IBytes(%d) = %q, humanize says %q", n, got, want)
		}
	}
}

// verbs are a message's formatting verbs, sorted: a translation must use
// the same ones, or its arguments come out wrong.
var verbRE = regexp.MustCompile(`%(\[\d+\])?[-+# 0]*\d*(\.\d+)?[a-zA-Z%]`)

func verbs(s string) []string {
	v := verbRE.FindAllString(s, -1)
	for i := range v {
		v[i] = regexp.MustCompile(`\[\d+\]`).ReplaceAllString(v[i], "")
	}
	slices.Sort(v)
	return v
}

// TestCatalogParity fails when a message exists in one language and not the
// other: a message the code or the e-mail templates use (in English, its
// key) with no Spanish, a Spanish entry nothing uses, or a translation whose
// verbs differ from the English.
func TestCatalogParity(t *testing.T) {
	used := usedKeys(t)
	if len(used) < 100 {
		t.Fatalf("found only %d messages in the sources: the scan is broken", len(used))
	}
	for key, where := range used {
		for _, v := range verbs(key) {
			if strings.HasPrefix(v, "% ") {
				t.Errorf("%s: %q has %q: a literal percent sign is written %%%%", where, key, v)
			}
		}
		_, ok := spanish[key]
		_, okp := plurals[key]
		if !ok && !okp {
			t.Errorf("%s: %q has no Spanish", where, key)
		}
	}
	for key, es := range spanish {
		if _, ok := used[key]; !ok {
			t.Errorf("Spanish entry %q is used nowhere (English lacks it)", key)
		}
		if strings.TrimSpace(es) == "" {
			t.Errorf("Spanish entry %q is empty", key)
		}
		if !slices.Equal(verbs(key), verbs(es)) {
			t.Errorf("%q: Spanish %q has verbs %v, English %v", key, es, verbs(es), verbs(key))
		}
	}
	for key, pm := range plurals {
		if _, ok := used[key]; !ok {
			t.Errorf("plural entry %q is used nowhere", key)
		}
		if _, dup := spanish[key]; dup {
			t.Errorf("%q is both a plain and a plural message", key)
		}
		for _, form := range []string{pm.en.One, pm.en.Other, pm.es.One, pm.es.Other} {
			if !slices.Equal(verbs(key), verbs(form)) {
				t.Errorf("%q: form %q has verbs %v, want %v", key, form, verbs(form), verbs(key))
			}
		}
		if pm.en.Arg != pm.es.Arg || pm.en.Arg < 1 {
			t.Errorf("%q: the count is argument %d in English, %d in Spanish", key, pm.en.Arg, pm.es.Arg)
		}
	}
}

// constString is the value of a string literal, or of literals joined
// with +.
func constString(e ast.Expr) (string, bool) {
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(e.Value)
		return s, err == nil
	case *ast.ParenExpr:
		return constString(e.X)
	case *ast.BinaryExpr:
		if e.Op != token.ADD {
			return "", false
		}
		a, ok1 := constString(e.X)
		b, ok2 := constString(e.Y)
		return a + b, ok1 && ok2
	}
	return "", false
}

// sources are where messages for people are written.
var sources = []string{"../../cmd/mbk", "../../plugins/smtp"}

var templateKey = regexp.MustCompile(`\(?\bt ("(?:[^"\\]|\\.)*")`)

// usedKeys finds every message the program translates: the string literal
// of each T(...) and i18n.Noop(...) call in the Go sources (tests excluded)
// and of each t "..." in the e-mail templates.
func usedKeys(t *testing.T) map[string]string {
	used := map[string]string{}
	fset := token.NewFileSet()
	for _, root := range sources {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			switch {
			case d.IsDir():
				return nil
			case strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go"):
				f, err := parser.ParseFile(fset, path, nil, 0)
				if err != nil {
					return err
				}
				ast.Inspect(f, func(n ast.Node) bool {
					call, ok := n.(*ast.CallExpr)
					if !ok || len(call.Args) == 0 {
						return true
					}
					sel, ok := call.Fun.(*ast.SelectorExpr)
					if !ok || (sel.Sel.Name != "T" && sel.Sel.Name != "Noop") {
						return true
					}
					if key, ok := constString(call.Args[0]); ok {
						used[key] = fset.Position(call.Pos()).String()
					}
					return true
				})
			case strings.Contains(path, "templates"):
				src, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				for _, m := range templateKey.FindAllStringSubmatch(string(src), -1) {
					key, err := strconv.Unquote(m[1])
					if err != nil {
						t.Fatalf("%s: %v", path, err)
					}
					used[key] = path
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return used
}
