package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"

	"github.com/pkg/sftp"

	"github.com/mbk-backup/mbk/core/sdk"
)

// partName is where a file is written until it is whole: a dot name, which
// CheckStoreName keeps out of every set, so List never shows it.
func partName(file string) string { return "." + file + ".part" }

// filePath is where a set's file lives. The pool's blobs are spread over
// 256 directories by their first two hex digits (<set dir>/ab/<blob>): a
// pool of 5 million blobs would otherwise be one directory that no server
// lists quickly and that the client reads whole (pkg/sftp's ReadDir).
func (c *conn) filePath(set, file string) string {
	if set == sdk.PoolSet && len(file) > 2 {
		return path.Join(c.base, set, file[:2], file)
	}
	return path.Join(c.base, set, file)
}

// Put writes the file under its temporary name and renames it into place
// only once every byte is written and the server has closed it, so a
// half-uploaded file never has its final name.
func (p *plugin) Put(ctx context.Context, cfg sdk.Config, set, file string, size int64, r io.Reader) (string, error) {
	c, err := p.open(ctx, cfg)
	if err != nil {
		return "", err
	}
	defer c.Close()
	final := c.filePath(set, file)
	dir := path.Dir(final)
	part := path.Join(dir, partName(file))
	loc := c.s.url(final)
	if err := c.sftp.MkdirAll(dir); err != nil {
		return "", fmt.Errorf("upload %s: create %s: %w", loc, dir, c.why(ctx, err))
	}
	if err := c.upload(ctx, part, size, r); err != nil {
		// Best effort on the still-open connection: a leftover part has a
		// dot name, which List ignores and Delete removes.
		if rmErr := c.sftp.Remove(part); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) {
			p.log.Warn("could not remove the partial upload", "path", c.s.url(part), "error", rmErr.Error())
		}
		return "", fmt.Errorf("upload %s: %w", loc, err)
	}
	if err := c.rename(part, final); err != nil {
		return "", fmt.Errorf("upload %s: rename %s into place: %w", loc, partName(file), c.why(ctx, err))
	}
	return loc, nil
}

// upload writes exactly size bytes of r to name and closes it.
func (c *conn) upload(ctx context.Context, name string, size int64, r io.Reader) error {
	f, err := c.sftp.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return fmt.Errorf("create %s: %w", path.Base(name), c.why(ctx, err))
	}
	// CopyN hands the sftp client a LimitedReader, whose length lets it
	// keep many writes in flight.
	n, err := io.CopyN(f, sdk.ContextReader(ctx, r), size)
	if err == nil {
		err = atEnd(r, size)
	}
	if err == nil {
		err = c.sync(f)
	}
	if closeErr := f.Close(); err == nil && closeErr != nil {
		return fmt.Errorf("close %s: %w", path.Base(name), c.why(ctx, closeErr))
	}
	switch {
	case err == io.EOF:
		return fmt.Errorf("the file ended after %d of its %d bytes", n, size)
	case err != nil:
		return c.why(ctx, err)
	}
	return nil
}

// atEnd checks that r holds nothing past the announced size.
func atEnd(r io.Reader, size int64) error {
	var one [1]byte
	k, err := io.ReadFull(r, one[:])
	if k > 0 {
		return fmt.Errorf("the file holds more than the %d bytes announced", size)
	}
	if err != nil && err != io.EOF {
		return fmt.Errorf("read the file: %w", err)
	}
	return nil
}

// sync asks the server to put the file on disk before it gets its final
// name, where the server can (OpenSSH's fsync extension): a crash of the
// server then cannot leave a renamed but empty file.
func (c *conn) sync(f *sftp.File) error {
	err := f.Sync()
	var se *sftp.StatusError
	if errors.As(err, &se) && se.FxCode() == sftp.ErrSSHFxOpUnsupported {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	return nil
}

// rename moves a finished upload into place, replacing an older copy.
// posix-rename replaces atomically; servers without it get remove, then
// rename.
func (c *conn) rename(from, to string) error {
	err := c.sftp.PosixRename(from, to)
	var se *sftp.StatusError
	if errors.As(err, &se) && se.FxCode() == sftp.ErrSSHFxOpUnsupported {
		if err := c.sftp.Remove(to); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return c.sftp.Rename(from, to)
	}
	return err
}

func (p *plugin) Get(ctx context.Context, cfg sdk.Config, set, file string, w io.Writer) error {
	c, err := p.open(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	name := c.filePath(set, file)
	f, err := c.sftp.Open(name)
	if errors.Is(err, fs.ErrNotExist) && set == sdk.PoolSet {
		// A blob uploaded before the pool was spread over directories.
		f, err = c.sftp.Open(path.Join(c.base, set, file))
	}
	if err != nil {
		return fmt.Errorf("download %s: %w", c.s.url(name), c.why(ctx, err))
	}
	defer f.Close()
	if _, err := io.Copy(sdk.ContextWriter(ctx, w), f); err != nil {
		return fmt.Errorf("download %s: %w", c.s.url(name), c.why(ctx, err))
	}
	return nil
}

// List returns each directory under path as a set, with its finished files.
// A set directory may hold no finished file yet: it is listed all the same,
// so that the core can delete it.
func (p *plugin) List(ctx context.Context, cfg sdk.Config) ([]sdk.StoredSet, error) {
	c, err := p.open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	dirs, err := c.sftp.ReadDir(c.base)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // nothing stored yet: the first upload creates it
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", c.s.url(c.base), c.why(ctx, err))
	}
	var sets []sdk.StoredSet
	for _, d := range dirs {
		if !d.IsDir() || sdk.CheckStoreName(d.Name()) != nil || d.Name() == sdk.PoolSet {
			continue // the pool is listed by ListFiles, a directory at a time
		}
		dir := path.Join(c.base, d.Name())
		files, err := c.sftp.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", c.s.url(dir), c.why(ctx, err))
		}
		set := sdk.StoredSet{Name: d.Name()}
		for _, f := range files {
			if f.Mode().IsRegular() && sdk.CheckStoreName(f.Name()) == nil {
				set.Files = append(set.Files, sdk.StoredFile{Name: f.Name(), Size: f.Size()})
			}
		}
		sets = append(sets, set)
	}
	return sets, nil
}

// ListFiles calls fn for each finished file of a set. The pool is read one
// of its 256 directories at a time, plus the blobs an earlier mbk left in
// the pool's own directory. (The SDK leaves out the dot names of uploads
// in progress.)
func (p *plugin) ListFiles(ctx context.Context, cfg sdk.Config, set string, fn func(sdk.StoredFile) error) error {
	c, err := p.open(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.walkSet(ctx, set, func(_ string, fi os.FileInfo) error {
		if !fi.Mode().IsRegular() {
			return nil
		}
		return fn(sdk.StoredFile{Name: fi.Name(), Size: fi.Size()})
	}, nil)
}

// Delete removes manifest.json first, so that a set half deleted (an error,
// a cancel) no longer looks complete; then every other file, partial
// uploads included, and the directory.
func (p *plugin) Delete(ctx context.Context, cfg sdk.Config, set string) error {
	c, err := p.open(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	remove := func(name string) error {
		if err := c.sftp.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete %s: %w", c.s.url(name), c.why(ctx, err))
		}
		return nil
	}
	if err := remove(path.Join(c.base, set, sdk.ManifestFile)); err != nil {
		return err
	}
	// Every file, then the directory.
	return c.walkSet(ctx, set, func(name string, _ os.FileInfo) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return remove(name)
	}, func(dir string) error {
		if err := c.sftp.RemoveDirectory(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete %s: %w", c.s.url(dir), c.why(ctx, err))
		}
		return nil
	})
}

// walkSet calls file for each entry of a set's directory, entering the
// pool's directories of blobs (filePath) instead, and then done, when not
// nil, for each directory it listed, the set's own last. A set that is not
// there has nothing.
func (c *conn) walkSet(ctx context.Context, set string, file func(name string, fi os.FileInfo) error, done func(dir string) error) error {
	var walk func(dir string, top bool) error
	walk = func(dir string, top bool) error {
		ents, err := c.readDir(ctx, dir)
		if err != nil {
			return err
		}
		for _, e := range ents {
			name := path.Join(dir, e.Name())
			if top && set == sdk.PoolSet && e.IsDir() && len(e.Name()) == 2 {
				err = walk(name, false)
			} else {
				err = file(name, e)
			}
			if err != nil {
				return err
			}
		}
		if done == nil {
			return nil
		}
		return done(dir)
	}
	return walk(path.Join(c.base, set), true)
}

// readDir lists a directory; one that is not there holds nothing.
func (c *conn) readDir(ctx context.Context, dir string) ([]os.FileInfo, error) {
	ents, err := c.sftp.ReadDirContext(ctx, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", c.s.url(dir), c.why(ctx, err))
	}
	return ents, nil
}

// why prefers the cancellation to the error it caused on the connection.
func (c *conn) why(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return err
}

// DeleteFiles removes some files of a set (the core's pool sweep).
func (p *plugin) DeleteFiles(ctx context.Context, cfg sdk.Config, set string, files []string) error {
	c, err := p.open(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := c.filePath(set, f)
		err := c.sftp.Remove(name)
		if errors.Is(err, fs.ErrNotExist) && set == sdk.PoolSet {
			name = path.Join(c.base, set, f) // see Get
			err = c.sftp.Remove(name)
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete %s: %w", c.s.url(name), c.why(ctx, err))
		}
	}
	return nil
}
