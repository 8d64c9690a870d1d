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
// the root) lies in or is, or "" when rel is kept. rel's components are
// cut in place, not split: every entry of a walk is asked about.
func (e *excluder) match(rel string) string {
	if rel == "." || len(e.patterns) == 0 {
		return ""
	}
	for _, pat := range e.patterns {
		end, ok := 0, true
		for i, c := range pat {
			if i > 0 {
				if end >= len(rel) {
					ok = false // rel has fewer components than pat
					break
				}
				end++ // the slash
			}
			start := end
			if j := strings.IndexByte(rel[start:], '/'); j >= 0 {
				end = start + j
			} else {
				end = len(rel)
			}
			if m, _ := path.Match(c, rel[start:end]); !m {
				ok = false
				break
			}
		}
		if ok {
			return rel[:end]
		}
	}
	return ""
}
