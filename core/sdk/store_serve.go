package sdk

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mbk-backup/mbk/core/internal/wire"
	"github.com/mbk-backup/mbk/core/internal/wire/pb"
)

// storeServer serves the store kind. Put reads the file from the core's side
// channel, Get writes it there: bulk bytes never travel as gRPC messages.
type storeServer struct {
	pb.UnimplementedStoreServer
	srv  *server
	impl Storer
}

// checkStoreNames keeps names that could climb out of a set (../, /) away
// from every Storer.
func checkStoreNames(set string, file ...string) error {
	if err := CheckStoreName(set); err != nil {
		return fmt.Errorf("set: %w", err)
	}
	for _, f := range file {
		if err := CheckStoreName(f); err != nil {
			return fmt.Errorf("file: %w", err)
		}
	}
	return nil
}

func (s *storeServer) Put(ctx context.Context, r *pb.StorePutRequest) (*pb.StorePutResponse, error) {
	cfg, err := s.srv.config(r.GetConfig())
	if err != nil {
		return nil, err
	}
	if err := checkStoreNames(r.GetSet(), r.GetFile()); err != nil {
		return nil, err
	}
	if r.GetSize() < 0 {
		return nil, fmt.Errorf("size %d is negative", r.GetSize())
	}
	conn, err := wire.Dial(r.GetSocket())
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	sr := &sizedReader{r: conn, size: r.GetSize(), left: r.GetSize()}
	loc, err := s.impl.Put(ctx, cfg, r.GetSet(), r.GetFile(), r.GetSize(), sr)
	if err != nil {
		return nil, err
	}
	if sr.left > 0 {
		return nil, wire.ErrShortRead
	}
	return &pb.StorePutResponse{Bytes: sr.read(), Location: loc}, nil
}

func (s *storeServer) Get(ctx context.Context, r *pb.StoreGetRequest) (*pb.StoreGetResponse, error) {
	cfg, err := s.srv.config(r.GetConfig())
	if err != nil {
		return nil, err
	}
	if err := checkStoreNames(r.GetSet(), r.GetFile()); err != nil {
		return nil, err
	}
	conn, err := wire.Dial(r.GetSocket())
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	cw := &wire.CountingWriter{W: conn}
	if err := s.impl.Get(ctx, cfg, r.GetSet(), r.GetFile(), cw); err != nil {
		return nil, err
	}
	// Close before answering, so that the core has seen every byte by the
	// time it reads our count.
	if err := conn.Close(); err != nil {
		return nil, fmt.Errorf("close the stream: %w", err)
	}
	return &pb.StoreGetResponse{Bytes: cw.N}, nil
}

func (s *storeServer) List(ctx context.Context, r *pb.ConfigRequest) (*pb.StoreListResponse, error) {
	cfg, err := s.srv.config(r.GetConfig())
	if err != nil {
		return nil, err
	}
	sets, err := s.impl.List(ctx, cfg)
	if err != nil {
		return nil, err
	}
	// Sorted here once, so that no plugin has to remember it.
	slices.SortFunc(sets, func(a, b StoredSet) int { return cmp.Compare(a.Name, b.Name) })
	out := &pb.StoreListResponse{}
	for _, set := range sets {
		slices.SortFunc(set.Files, func(a, b StoredFile) int { return cmp.Compare(a.Name, b.Name) })
		ps := &pb.StoredSet{Name: set.Name}
		for _, f := range set.Files {
			ps.Files = append(ps.Files, &pb.StoredFile{Name: f.Name, Size: f.Size})
		}
		out.Sets = append(out.Sets, ps)
	}
	return out, nil
}

// listPage is how many files one ListFiles message carries: about 60 KB
// for the pool's names, far below gRPC's message limits.
const listPage = 1000

func (s *storeServer) ListFiles(r *pb.StoreListFilesRequest, stream grpc.ServerStreamingServer[pb.StoredFilesPage]) error {
	fl, ok := s.impl.(FileLister)
	if !ok {
		return status.Error(codes.Unimplemented, "this store lists files with List only")
	}
	cfg, err := s.srv.config(r.GetConfig())
	if err != nil {
		return err
	}
	if err := checkStoreNames(r.GetSet()); err != nil {
		return err
	}
	page := &pb.StoredFilesPage{}
	send := func() error {
		// A new page each time: gRPC may still read a sent message.
		err := stream.Send(page)
		page = &pb.StoredFilesPage{Files: make([]*pb.StoredFile, 0, listPage)}
		return err
	}
	err = fl.ListFiles(stream.Context(), cfg, r.GetSet(), func(f StoredFile) error {
		if CheckStoreName(f.Name) != nil {
			return nil // a store's own bookkeeping (an upload in progress)
		}
		page.Files = append(page.Files, &pb.StoredFile{Name: f.Name, Size: f.Size})
		if len(page.Files) < listPage {
			return nil
		}
		return send()
	})
	if err != nil {
		return err
	}
	if len(page.Files) > 0 {
		return send()
	}
	return nil
}

func (s *storeServer) Delete(ctx context.Context, r *pb.StoreDeleteRequest) (*pb.Empty, error) {
	cfg, err := s.srv.config(r.GetConfig())
	if err != nil {
		return nil, err
	}
	if err := checkStoreNames(r.GetSet()); err != nil {
		return nil, err
	}
	if err := s.impl.Delete(ctx, cfg, r.GetSet()); err != nil {
		return nil, err
	}
	return &pb.Empty{}, nil
}

func (s *storeServer) DeleteFiles(ctx context.Context, r *pb.StoreDeleteFilesRequest) (*pb.Empty, error) {
	fd, ok := s.impl.(FileDeleter)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "this store cannot delete single files")
	}
	cfg, err := s.srv.config(r.GetConfig())
	if err != nil {
		return nil, err
	}
	if err := checkStoreNames(r.GetSet(), r.GetFiles()...); err != nil {
		return nil, err
	}
	if err := fd.DeleteFiles(ctx, cfg, r.GetSet(), r.GetFiles()); err != nil {
		return nil, err
	}
	return &pb.Empty{}, nil
}
