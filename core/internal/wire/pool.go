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

// The pool's side of the protocol: while a pooled artifact is backed up,
// the core serves service Pool on a unix socket of its own, in a
// private directory like the side channel's, and the plugin dials it. The
// plugin asks many questions (one per file) that the bulk stream cannot
// carry, hence gRPC; a new blob's content moves in chunks of poolChunk.

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
}

// poolChunk is the data a Put message carries at most. gRPC takes each
// message's buffer, on both ends, from pools of 256 B, 4, 16 and 32 KiB and
// 1 MiB: a message just over 32 KiB holds 1 MiB. With 256 KiB chunks the
// volume plugin's puts and the messages queued in the flow-control window
// kept about 7 MiB of such buffers, and the large bench site's first pooled
// run peaked at 108-115 MiB, plugin 20-23 MiB of it; a chunk that fits the
// 32 KiB pool with its framing made the plugin 7-8 MiB and the run 93-95.
// Smaller messages are no slower (BenchmarkPoolPut: 2,000 blobs of 10-40
// KB, 8,300-10,000/s with 256 KiB, 13,000-14,100/s with this;
// BenchmarkPoolPutLarge: 4 MiB blobs, 640-960 MB/s, and 910-1,130).
const poolChunk = 32<<10 - 64

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
	buf := make([]byte, min(poolChunk, max(expect.Size, 1)))
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
