package sdk

import (
	"context"
	"fmt"
	"io"

	pb "github.com/mbk-backup/mbk/core/sdk/proto"
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
	sc, err := newSideChannel()
	if err != nil {
		return PutReply{}, err
	}
	defer sc.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	type sent struct {
		n     int64
		err   error
		local bool // err is about r, not about the socket
	}
	done := make(chan sent, 1)
	src := &errReader{r: r}
	go func() {
		conn, err := sc.accept(ctx)
		if err != nil {
			done <- sent{err: err}
			return
		}
		// Closing without CloseWrite on any failure makes the plugin's
		// reader fail short instead of seeing a clean end of file.
		defer conn.Close()
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		defer stop()
		n, err := io.CopyN(conn, src, size)
		switch {
		case src.err != nil:
			done <- sent{n, fmt.Errorf("reading %s: %w", file, src.err), true}
			return
		case err == io.EOF:
			done <- sent{n, fmt.Errorf("%s ended after %d of the %d bytes announced", file, n, size), true}
			return
		case err != nil:
			done <- sent{n, err, false}
			return
		}
		var one [1]byte
		if k, _ := io.ReadFull(src, one[:]); k > 0 {
			done <- sent{n, fmt.Errorf("%s holds more than the %d bytes announced", file, size), true}
			return
		}
		done <- sent{n, conn.CloseWrite(), false}
	}()

	resp, err := c.store.Put(ctx, &pb.StorePutRequest{Config: cfg, Set: set, File: file, Size: size, Socket: sc.path})
	if err != nil {
		cancel()
		s := <-done
		if s.local {
			return PutReply{}, fmt.Errorf("%w (the plugin then failed: %v)", s.err, rpcError(err))
		}
		return PutReply{}, rpcError(err)
	}
	sc.giveUpAcceptAfter(lateConnect)
	s := <-done
	if s.local {
		return PutReply{}, s.err
	}
	if s.err != nil {
		return PutReply{}, fmt.Errorf("sending the stream: %w", s.err)
	}
	if s.n != resp.GetBytes() {
		return PutReply{}, fmt.Errorf("sent %d bytes but the plugin read %d", s.n, resp.GetBytes())
	}
	return PutReply{Bytes: s.n, Location: resp.GetLocation()}, nil
}

// Get asks a store plugin for one file of a set and copies it into w. It
// succeeds only when the call returned OK and the bytes w received match the
// count the plugin reported.
func (c *Client) Get(ctx context.Context, cfg *pb.Config, set, file string, w io.Writer) (int64, error) {
	sc, err := newSideChannel()
	if err != nil {
		return 0, err
	}
	defer sc.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	type copied struct {
		n   int64
		err error
	}
	done := make(chan copied, 1)
	sink := &errWriter{w: w}
	go func() {
		conn, err := sc.accept(ctx)
		if err != nil {
			done <- copied{err: err}
			return
		}
		defer conn.Close()
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		defer stop()
		n, err := io.Copy(sink, conn)
		done <- copied{n, err}
	}()

	r, err := c.store.Get(ctx, &pb.StoreGetRequest{Config: cfg, Set: set, File: file, Socket: sc.path})
	if err != nil {
		cancel()
		<-done
		// When the core could not keep the bytes, the plugin fails on a
		// broken pipe: the core's own write error is the cause to report.
		if sink.err != nil {
			return 0, fmt.Errorf("writing %s: %w (the plugin then failed: %v)", file, sink.err, rpcError(err))
		}
		return 0, rpcError(err)
	}
	sc.giveUpAcceptAfter(lateConnect)
	cp := <-done
	if cp.err != nil {
		return cp.n, fmt.Errorf("reading the stream: %w", cp.err)
	}
	if cp.n != r.GetBytes() {
		return cp.n, fmt.Errorf("the plugin reported %d bytes but %d arrived", r.GetBytes(), cp.n)
	}
	return cp.n, nil
}

// List asks a store plugin for every set it holds, complete or not, sorted
// by name with each set's files sorted by name.
func (c *Client) List(ctx context.Context, cfg *pb.Config) ([]StoredSet, error) {
	r, err := c.store.List(ctx, &pb.ConfigRequest{Config: cfg})
	if err != nil {
		return nil, rpcError(err)
	}
	var out []StoredSet
	for _, s := range r.GetSets() {
		set := StoredSet{Name: s.GetName()}
		for _, f := range s.GetFiles() {
			set.Files = append(set.Files, StoredFile{Name: f.GetName(), Size: f.GetSize()})
		}
		out = append(out, set)
	}
	return out, nil
}

// DeleteSet asks a store plugin to remove a whole set, manifest.json first.
func (c *Client) DeleteSet(ctx context.Context, cfg *pb.Config, set string) error {
	_, err := c.store.Delete(ctx, &pb.StoreDeleteRequest{Config: cfg, Set: set})
	return rpcError(err)
}

// errReader remembers the first error of the reader it wraps, to tell the
// core's read failures from the plugin's.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}
