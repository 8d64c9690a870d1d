package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/mbk-backup/mbk/core/sdk"
)

// Preflight checks, without changing anything, that a backup could run now:
// the container runs (or, over TCP, the server answers at host and port),
// the clients are there, the credentials work and the databases exist.
func (p *plugin) Preflight(ctx context.Context, cfg sdk.Config) sdk.Diagnostics {
	s, err := decodeSettings(cfg)
	if err != nil {
		return sdk.Diagnostics{sdk.Errorf("", "%v", err)}
	}
	// where is the setting that says where the clients run.
	where := "container"
	switch {
	case s.Host != "" && s.ClientContainer != "":
		where = "client_container"
	case s.Host != "":
		where = "host"
	case s.Container == "":
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
		attr := "password"
		if s.Host != "" && unreachable(err) {
			attr = "host"
		}
		return append(ds, sdk.Errorf(attr, "log in as %q %s: %v", s.User, ss.at, err))
	}
	if s.AllDatabases {
		names, err := ss.userDatabases(ctx)
		switch {
		case err != nil:
			ds = append(ds, sdk.Errorf("all_databases", "list databases %s: %v", ss.at, err))
		case len(names) == 0:
			ds = append(ds, sdk.Diagnostic{Attribute: "all_databases",
				Summary: fmt.Sprintf("the server %s has no databases besides its own: nothing to dump", ss.at)})
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
			ds = append(ds, sdk.Errorf(attr, "the server %s has no database %q (or user %q cannot see it)", ss.at, db, s.User))
		case err != nil:
			ds = append(ds, sdk.Errorf(attr, "read database %q %s: %v", db, ss.at, err))
		}
	}
	return ds
}

// unreachable tells a client error that never reached the server (nothing
// listening, unknown host, a lost handshake) from one the server gave.
func unreachable(err error) bool {
	msg := err.Error()
	for _, code := range []string{"ERROR 2002 ", "ERROR 2003 ", "ERROR 2005 ", "ERROR 2013 ", "Can't connect", "Unknown server host", "Unknown MySQL server host"} {
		if strings.Contains(msg, code) {
			return true
		}
	}
	return false
}
