package wire

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/mbk-backup/mbk/core/internal/wire/pb"
)

// The pool's side of the protocol: while a pooled artifact is backed up or
// restored, the core serves service Pool on a unix socket of its own, in a
// private directory like the side channel's, and the plugin dials it. The
// plugin asks many questions (one per file) that the bulk stream cannot
// carry, hence gRPC; blob contents move in chunks of poolChunk.

// Blob names a file's content: the SHA-1 of its bytes, and its size.
type Blob struct {
	SHA1 string
	Size int64
}

// PoolBackend is what the core serves; its errors reach the plugin.
type PoolBackend interface {
	Have(blobs []Blob) ([]bool, error)
	// Put reads r to its end and returns the blob as stored (named by the
	// bytes read). expect is what the plugin announced.
	Put(expect Blob, r io.Reader) (Blob, error)
	Open(b Blob) (io.ReadCloser, error)
}

// poolChunk is the data a message carries at most. With the wide window
// below, 256 KiB messages moved as many blobs as 1 MiB ones
// (BenchmarkPoolOpenMany: 18,000 a second) for a quarter of the memory
// each message takes on both ends.
const poolChunk = 256 << 10

// putChunk is what a Put message carries: puts run several at once, and
// a new file is read from the disk at that pace anyway.
const putChunk = 256 << 10

// poolWindow is HTTP/2's flow-control window on a pool connection: with
// gRPC's 64 KiB default a blob's bytes wait for the reader's window updates
// every few chunks.
const poolWindow = 2 << 20

// PoolServer is the core's end of a pool socket.
type PoolServer struct {
	sc  *sideChannel
	srv *grpc.Server
}

// ServePool serves b until Stop.
func ServePool(b PoolBackend) (*PoolServer, error) {
	sc, err := newSideChannel()
	if err != nil {
		return nil, err
	}
	srv := grpc.NewServer(grpc.InitialWindowSize(poolWindow), grpc.InitialConnWindowSize(poolWindow),
		grpc.WriteBufferSize(poolChunk), grpc.ReadBufferSize(poolChunk))
	pb.RegisterPoolServer(srv, &poolService{b: b})
	go srv.Serve(sc.ln)
	return &PoolServer{sc: sc, srv: srv}, nil
}

// Socket is the path the plugin dials.
func (s *PoolServer) Socket() string { return s.sc.path }

// Stop ends the service and removes its socket.
func (s *PoolServer) Stop() {
	s.srv.Stop()
	s.sc.Close()
}

type poolService struct {
	pb.UnimplementedPoolServer
	b PoolBackend
}

func (s *poolService) Have(_ context.Context, r *pb.PoolHaveRequest) (*pb.PoolHaveResponse, error) {
	bs := make([]Blob, len(r.GetBlobs()))
	for i, b := range r.GetBlobs() {
		bs[i] = Blob{b.GetSha1(), b.GetSize()}
	}
	have, err := s.b.Have(bs)
	if err != nil {
		return nil, err
	}
	return &pb.PoolHaveResponse{Have: have}, nil
}

// chunkReader reads the data of a stream of PoolChunks.
type chunkReader struct {
	recv func() (*pb.PoolChunk, error)
	buf  []byte
}

func (c *chunkReader) Read(p []byte) (int, error) {
	for len(c.buf) == 0 {
		m, err := c.recv()
		if err != nil {
			return 0, err
		}
		c.buf = m.GetData()
	}
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	return n, nil
}

func (s *poolService) Put(st grpc.ClientStreamingServer[pb.PoolChunk, pb.PoolPutResponse]) error {
	first, err := st.Recv()
	if err != nil {
		return err
	}
	if first.GetBlob() == nil {
		return errors.New("pool put: the first message names no blob")
	}
	expect := Blob{first.GetBlob().GetSha1(), first.GetBlob().GetSize()}
	got, err := s.b.Put(expect, &chunkReader{recv: st.Recv, buf: first.GetData()})
	if err != nil {
		return err
	}
	return st.SendAndClose(&pb.PoolPutResponse{Blob: &pb.Blob{Sha1: got.SHA1, Size: got.Size}})
}

func (s *poolService) Open(r *pb.PoolOpenRequest, st grpc.ServerStreamingServer[pb.PoolChunk]) error {
	b := Blob{r.GetBlob().GetSha1(), r.GetBlob().GetSize()}
	rc, err := s.b.Open(b)
	if err != nil {
		return err
	}
	defer rc.Close()
	buf := make([]byte, min(poolChunk, max(b.Size, 1)))
	for {
		n, err := io.ReadFull(rc, buf)
		if n > 0 {
			if serr := st.Send(&pb.PoolChunk{Data: buf[:n]}); serr != nil {
				return serr
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (s *poolService) OpenMany(r *pb.PoolOpenManyRequest, st grpc.ServerStreamingServer[pb.PoolChunk]) error {
	var total int64
	for _, b := range r.GetBlobs() {
		total += b.GetSize()
	}
	buf := make([]byte, 0, min(poolChunk, max(total, 1)))
	send := func() error {
		if len(buf) == 0 {
			return nil
		}
		err := st.Send(&pb.PoolChunk{Data: buf})
		buf = buf[:0]
		return err
	}
	for _, pbb := range r.GetBlobs() {
		b := Blob{pbb.GetSha1(), pbb.GetSize()}
		rc, err := s.b.Open(b)
		if err != nil {
			return err
		}
		var n int64
		for {
			if len(buf) == cap(buf) {
				if err := send(); err != nil {
					rc.Close()
					return err
				}
			}
			k, err := rc.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+k]
			n += int64(k)
			if err == io.EOF {
				break
			}
			if err != nil {
				rc.Close()
				return err
			}
		}
		rc.Close()
		if n != b.Size {
			return fmt.Errorf("blob %s-%d gave %d bytes", b.SHA1, b.Size, n)
		}
	}
	return send()
}

// PoolClient is a plugin's end of a pool socket. It is safe for
// concurrent use.
type PoolClient struct {
	conn *grpc.ClientConn
	c    pb.PoolClient
}

// DialPool connects to the core's pool.
func DialPool(socket string) (*PoolClient, error) {
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(poolWindow), grpc.WithInitialConnWindowSize(poolWindow),
		grpc.WithWriteBufferSize(poolChunk), grpc.WithReadBufferSize(poolChunk))
	if err != nil {
		return nil, fmt.Errorf("connect to the core's pool: %w", err)
	}
	return &PoolClient{conn: conn, c: pb.NewPoolClient(conn)}, nil
}

// Close ends the connection.
func (p *PoolClient) Close() error { return p.conn.Close() }

// Have asks which blobs the pool holds.
func (p *PoolClient) Have(ctx context.Context, blobs []Blob) ([]bool, error) {
	req := &pb.PoolHaveRequest{Blobs: make([]*pb.Blob, len(blobs))}
	for i, b := range blobs {
		req.Blobs[i] = &pb.Blob{Sha1: b.SHA1, Size: b.Size}
	}
	r, err := p.c.Have(ctx, req)
	if err != nil {
		return nil, RPCError(err)
	}
	if len(r.GetHave()) != len(blobs) {
		return nil, fmt.Errorf("the core answered %d of %d pool questions", len(r.GetHave()), len(blobs))
	}
	return r.GetHave(), nil
}

// Put sends r's bytes to the pool and returns the blob as stored.
func (p *PoolClient) Put(ctx context.Context, expect Blob, r io.Reader) (Blob, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := p.c.Put(ctx)
	if err != nil {
		return Blob{}, RPCError(err)
	}
	buf := make([]byte, min(putChunk, max(expect.Size, 1)))
	first := true
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 || first {
			m := &pb.PoolChunk{Data: buf[:n]}
			if first {
				m.Blob = &pb.Blob{Sha1: expect.SHA1, Size: expect.Size}
				first = false
			}
			if err := st.Send(m); err != nil {
				if err == io.EOF { // the core failed: its status says why
					_, err = st.CloseAndRecv()
				}
				return Blob{}, RPCError(err)
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return Blob{}, rerr
		}
	}
	resp, err := st.CloseAndRecv()
	if err != nil {
		return Blob{}, RPCError(err)
	}
	return Blob{resp.GetBlob().GetSha1(), resp.GetBlob().GetSize()}, nil
}

// Open reads a blob's content from the pool. The reader fails, instead of
// ending, when the core found the content does not match the name.
func (p *PoolClient) Open(ctx context.Context, b Blob) (io.ReadCloser, error) {
	ctx, cancel := context.WithCancel(ctx)
	st, err := p.c.Open(ctx, &pb.PoolOpenRequest{Blob: &pb.Blob{Sha1: b.SHA1, Size: b.Size}})
	if err != nil {
		cancel()
		return nil, RPCError(err)
	}
	return newOpenReader(st, cancel), nil
}

// newOpenReader reads the chunks of an Open or OpenMany answer as one
// stream; Close ends the call.
func newOpenReader(st interface{ Recv() (*pb.PoolChunk, error) }, cancel context.CancelFunc) *openReader {
	return &openReader{chunkReader: chunkReader{recv: func() (*pb.PoolChunk, error) {
		m, err := st.Recv()
		if err != nil && err != io.EOF {
			err = RPCError(err)
		}
		return m, err
	}}, cancel: cancel}
}

type openReader struct {
	chunkReader
	cancel context.CancelFunc
}

func (o *openReader) Close() error {
	o.cancel()
	return nil
}

// OpenMany reads the contents of several blobs, one after the other: each
// blob's size says where it ends. The reader fails when the core found a
// blob whose content does not match its name.
func (p *PoolClient) OpenMany(ctx context.Context, blobs []Blob) (io.ReadCloser, error) {
	ctx, cancel := context.WithCancel(ctx)
	req := &pb.PoolOpenManyRequest{Blobs: make([]*pb.Blob, len(blobs))}
	for i, b := range blobs {
		req.Blobs[i] = &pb.Blob{Sha1: b.SHA1, Size: b.Size}
	}
	st, err := p.c.OpenMany(ctx, req)
	if err != nil {
		cancel()
		return nil, RPCError(err)
	}
	return newOpenReader(st, cancel), nil
}
