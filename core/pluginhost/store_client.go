package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/mbk-backup/mbk/core/internal/wire"
	"github.com/mbk-backup/mbk/core/internal/wire/pb"
	"github.com/mbk-backup/mbk/core/sdk"
)

// PutReply is what a store plugin said about one file it stored.
type PutReply struct {
	Bytes    int64
	Location string
}

// Put streams size bytes from r into a store plugin, which stores them as the
// set's file. It succeeds only when the call returned OK and the plugin read
// exactly the bytes sent. A reader that ends before size bytes or holds more
// is an error of its own, reported as the cause.
func (c *Client) Put(ctx context.Context, cfg *pb.Config, set, file string, size int64, r io.Reader) (PutReply, error) {
	src := &wire.ErrReader{R: r}
	// Any failure closes without CloseWrite, so the plugin's reader fails
	// short instead of seeing a clean end of file.
	send := func(conn *net.UnixConn) (int64, error, bool) {
		n, err := io.CopyN(conn, src, size)
		switch {
		case src.Err != nil:
			return n, fmt.Errorf("reading %s: %w", file, src.Err), true
		case err == io.EOF:
			return n, fmt.Errorf("%s ended after %d of the %d bytes announced", file, n, size), true
		case err != nil:
			return n, err, false
		}
		var one [1]byte
		if k, _ := io.ReadFull(src, one[:]); k > 0 {
			return n, fmt.Errorf("%s holds more than the %d bytes announced", file, size), true
		}
		return n, conn.CloseWrite(), false
	}
	var resp *pb.StorePutResponse
	n, err := wire.Push(ctx, send, func(ctx context.Context, socket string) (int64, error) {
		var err error
		resp, err = c.store.Put(ctx, &pb.StorePutRequest{Config: cfg, Set: set, File: file, Size: size, Socket: socket})
		return resp.GetBytes(), err
	})
	if err != nil {
		return PutReply{}, err
	}
	return PutReply{Bytes: n, Location: resp.GetLocation()}, nil
}

// Get asks a store plugin for one file of a set and copies it into w. It
// succeeds only when the call returned OK and the bytes w received match the
// count the plugin reported.
func (c *Client) Get(ctx context.Context, cfg *pb.Config, set, file string, w io.Writer) (int64, error) {
	return wire.Pull(ctx, w, file, func(ctx context.Context, socket string) (int64, error) {
		r, err := c.store.Get(ctx, &pb.StoreGetRequest{Config: cfg, Set: set, File: file, Socket: socket})
		return r.GetBytes(), err
	})
}

// List asks a store plugin for every set it holds, complete or not, sorted
// by name with each set's files sorted by name.
func (c *Client) List(ctx context.Context, cfg *pb.Config) ([]sdk.StoredSet, error) {
	r, err := c.store.List(ctx, &pb.ConfigRequest{Config: cfg})
	if err != nil {
		return nil, wire.RPCError(err)
	}
	var out []sdk.StoredSet
	for _, s := range r.GetSets() {
		set := sdk.StoredSet{Name: s.GetName()}
		for _, f := range s.GetFiles() {
			set.Files = append(set.Files, sdk.StoredFile{Name: f.GetName(), Size: f.GetSize()})
		}
		out = append(out, set)
	}
	return out, nil
}

// ListFiles calls fn for each file of one set, page by page as the plugin
// lists them. A plugin that cannot (no sdk.FileLister) lists the set's
// files through List instead, all at once. fn's error stops the listing.
func (c *Client) ListFiles(ctx context.Context, cfg *pb.Config, set string, fn func(sdk.StoredFile) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the plugin's listing when fn stops early
	stream, err := c.store.ListFiles(ctx, &pb.StoreListFilesRequest{Config: cfg, Set: set})
	if err != nil {
		return wire.RPCError(err)
	}
	for pages := 0; ; pages++ {
		page, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if pages == 0 && errors.Is(optional(err), ErrUnsupported) {
			return c.listFilesOfList(ctx, cfg, set, fn)
		}
		if err != nil {
			return wire.RPCError(err)
		}
		for _, f := range page.GetFiles() {
			if err := fn(sdk.StoredFile{Name: f.GetName(), Size: f.GetSize()}); err != nil {
				return err
			}
		}
	}
}

func (c *Client) listFilesOfList(ctx context.Context, cfg *pb.Config, set string, fn func(sdk.StoredFile) error) error {
	sets, err := c.List(ctx, cfg)
	if err != nil {
		return err
	}
	for _, st := range sets {
		if st.Name != set {
			continue
		}
		for _, f := range st.Files {
			if err := fn(f); err != nil {
				return err
			}
		}
	}
	return nil
}

// DeleteSet asks a store plugin to remove a whole set, manifest.json first.
func (c *Client) DeleteSet(ctx context.Context, cfg *pb.Config, set string) error {
	_, err := c.store.Delete(ctx, &pb.StoreDeleteRequest{Config: cfg, Set: set})
	return wire.RPCError(err)
}

// DeleteFiles asks a store plugin to remove some files of a set;
// ErrUnsupported when it cannot.
func (c *Client) DeleteFiles(ctx context.Context, cfg *pb.Config, set string, files []string) error {
	_, err := c.store.DeleteFiles(ctx, &pb.StoreDeleteFilesRequest{Config: cfg, Set: set, Files: files})
	if err != nil {
		return optional(err)
	}
	return nil
}
