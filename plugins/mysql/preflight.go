package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/mbk-backup/mbk/core/sdk"
)

// Preflight checks, without changing anything, that a backup could run now:
// the container runs, the clients are there, the credentials work and the
// databases exist.
func (p *plugin) Preflight(ctx context.Context, cfg sdk.Config) sdk.Diagnostics {
	s, err := decodeSettings(cfg)
	if err != nil {
		return sdk.Diagnostics{sdk.Errorf("", "%v", err)}
	}
	where := "container"
	if s.Container == "" {
		where = "compose_service"
	}
	ss, err := open(ctx, s)
	if err != nil {
		return sdk.Diagnostics{sdk.Errorf(where, "%v", err)}
	}
	defer ss.Close()

	var ds sdk.Diagnostics
	if err := ss.needDump(s.Client); err != nil {
		ds = append(ds, sdk.Errorf("client", "%v", err))
	}
	if err := ss.needSQL(); err != nil {
		return append(ds, sdk.Errorf(where, "%v", err))
	}
	if _, err := ss.query(ctx, "SELECT 1;"); err != nil {
		return append(ds, sdk.Errorf("password", "log in as %q in container %q: %v", s.User, ss.name, err))
	}
	if s.AllDatabases {
		names, err := ss.userDatabases(ctx)
		switch {
		case err != nil:
			ds = append(ds, sdk.Errorf("all_databases", "list databases in container %q: %v", ss.name, err))
		case len(names) == 0:
			ds = append(ds, sdk.Diagnostic{Attribute: "all_databases",
				Summary: fmt.Sprintf("the server in container %q has no databases besides its own: nothing to dump", ss.name)})
		}
		return ds
	}
	attr := "database"
	if s.Database == "" {
		attr = "databases"
	}
	for _, db := range s.configured() {
		_, err := ss.database(ctx, db)
		switch {
		case errors.Is(err, errNoDatabase):
			ds = append(ds, sdk.Errorf(attr, "the server in container %q has no database %q (or user %q cannot see it)", ss.name, db, s.User))
		case err != nil:
			ds = append(ds, sdk.Errorf(attr, "read database %q in container %q: %v", db, ss.name, err))
		}
	}
	return ds
}
