package main

import (
	"fmt"
	"path"
	"strings"
)

// excluder decides which entries stay out of the archive. Each pattern is
// split into components matched one by one with path.Match, against the same
// number of leading components of an entry's path. So "cache" matches the
// top-level "cache" and everything below it, and "*" never crosses a slash.
type excluder struct {
	patterns [][]string
}

func newExcluder(patterns []string) (*excluder, error) {
	e := &excluder{}
	for _, raw := range patterns {
		p := strings.TrimPrefix(raw, "./")
		p = strings.TrimLeft(p, "/")
		p = strings.TrimSuffix(p, "/**")
		p = strings.TrimRight(p, "/")
		if p == "" || p == "." {
			return nil, fmt.Errorf("exclude pattern %q matches the whole source", raw)
		}
		comps := strings.Split(p, "/")
		for _, c := range comps {
			if c == "" || c == "." || c == ".." {
				return nil, fmt.Errorf("exclude pattern %q: empty, \".\" and \"..\" components are not allowed", raw)
			}
			if c == "**" {
				return nil, fmt.Errorf("exclude pattern %q: \"**\" is only allowed at the end", raw)
			}
			if _, err := path.Match(c, ""); err != nil {
				return nil, fmt.Errorf("exclude pattern %q: %v", raw, err)
			}
		}
		e.patterns = append(e.patterns, comps)
	}
	return e, nil
}

// match returns the excluded path that rel (a clean relative path, "." for
// the root) lies in or is, or "" when rel is kept.
func (e *excluder) match(rel string) string {
	if rel == "." || len(e.patterns) == 0 {
		return ""
	}
	comps := strings.Split(rel, "/")
	for _, pat := range e.patterns {
		if len(pat) > len(comps) {
			continue
		}
		ok := true
		for i, c := range pat {
			if m, _ := path.Match(c, comps[i]); !m {
				ok = false
				break
			}
		}
		if ok {
			return strings.Join(comps[:len(pat)], "/")
		}
	}
	return ""
}
