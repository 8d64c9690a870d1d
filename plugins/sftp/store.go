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

// Put writes the file under its temporary name and renames it into place
// only once every byte is written and the server has closed it, so a
// half-uploaded file never has its final name.
func (p *plugin) Put(ctx context.Context, cfg sdk.Config, set, file string, size int64, r io.Reader) (string, error) {
	c, err := p.open(ctx, cfg)
	if err != nil {
		return "", err
	}
	defer c.Close()
	dir := path.Join(c.base, set)
	final, part := path.Join(dir, file), path.Join(dir, partName(file))
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
	name := path.Join(c.base, set, file)
	f, err := c.sftp.Open(name)
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
		if !d.IsDir() || sdk.CheckStoreName(d.Name()) != nil {
			continue
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

// Delete removes manifest.json first, so that a set half deleted (an error,
// a cancel) no longer looks complete; then every other file, partial
// uploads included, and the directory.
func (p *plugin) Delete(ctx context.Context, cfg sdk.Config, set string) error {
	c, err := p.open(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	dir := path.Join(c.base, set)
	remove := func(name string) error {
		if err := c.sftp.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete %s: %w", c.s.url(name), c.why(ctx, err))
		}
		return nil
	}
	if err := remove(path.Join(dir, sdk.ManifestFile)); err != nil {
		return err
	}
	files, err := c.sftp.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list %s: %w", c.s.url(dir), c.why(ctx, err))
	}
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := remove(path.Join(dir, f.Name())); err != nil {
			return err
		}
	}
	if err := c.sftp.RemoveDirectory(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", c.s.url(dir), c.why(ctx, err))
	}
	return nil
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
		name := path.Join(c.base, set, f)
		if err := c.sftp.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete %s: %w", c.s.url(name), c.why(ctx, err))
		}
	}
	return nil
}
