package release

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// ArchiveName is the file name of t's archive in dist:
// keyless_<ver>_<os>_<arch>.tar.gz, or .zip for windows.
func ArchiveName(p Plan, t Target) string {
	ext := ".tar.gz"
	if t.GOOS == "windows" {
		ext = ".zip"
	}
	return ArtefactBase(p, t) + ext
}

// ArtefactBase is keyless_<ver-without-v>_<os>_<arch>, the stem every
// per-target artefact shares.
func ArtefactBase(p Plan, t Target) string {
	return fmt.Sprintf("keyless_%s_%s_%s", p.VersionNumber(), t.GOOS, t.Arch())
}

// archiveFile is one entry of an archive.
type archiveFile struct {
	name string
	mode fs.FileMode
	data []byte
}

// archiveFiles are the binary, README.md and LICENSE (when the checkout
// has one), sorted by name.
func archiveFiles(p Plan, t Target, bin string) ([]archiveFile, error) {
	b, err := os.ReadFile(bin)
	if err != nil {
		return nil, fmt.Errorf("archiving %s: %w", t, err)
	}
	files := []archiveFile{{name: t.Exe(), mode: 0o755, data: b}}
	for _, doc := range []string{"README.md", "LICENSE"} {
		b, err := os.ReadFile(filepath.Join(p.Source, doc))
		if errors.Is(err, fs.ErrNotExist) && doc == "LICENSE" {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("archiving %s: %w", t, err)
		}
		files = append(files, archiveFile{name: doc, mode: 0o644, data: b})
	}
	slices.SortFunc(files, func(a, b archiveFile) int { return cmpString(a.name, b.name) })
	return files, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// WriteArchive writes t's archive of the binary at bin into dir and
// returns its path. The bytes depend only on the inputs' bytes, p.Version
// and p.Epoch: entries sorted, every time p.Epoch, owner root (0/0), modes
// 0755 for the binary and 0644 for documents, no gzip file name or time.
func WriteArchive(p Plan, t Target, bin, dir string) (string, error) {
	files, err := archiveFiles(p, t, bin)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if t.GOOS == "windows" {
		err = writeZip(&buf, files, p.Epoch)
	} else {
		err = writeTarGz(&buf, files, p.Epoch)
	}
	if err != nil {
		return "", fmt.Errorf("archiving %s: %w", t, err)
	}
	path := filepath.Join(dir, ArchiveName(p, t))
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return "", fmt.Errorf("archiving %s: %w", t, err)
	}
	return path, nil
}

func writeTarGz(buf *bytes.Buffer, files []archiveFile, epoch time.Time) error {
	zw, err := gzip.NewWriterLevel(buf, gzip.BestCompression)
	if err != nil {
		return err
	}
	// The gzip header keeps no name, a zero time ("no time stamp") and
	// OS 255 ("unknown"), so nothing of the building host leaks in.
	zw.Header = gzip.Header{OS: 255}
	tw := tar.NewWriter(zw)
	for _, f := range files {
		h := &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     f.name,
			Mode:     int64(f.mode.Perm()),
			Size:     int64(len(f.data)),
			ModTime:  epoch.UTC().Truncate(time.Second),
			Uid:      0, Gid: 0, Uname: "root", Gname: "root",
			Format: tar.FormatUSTAR,
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

func writeZip(buf *bytes.Buffer, files []archiveFile, epoch time.Time) error {
	zw := zip.NewWriter(buf)
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) {
		return flate.NewWriter(w, flate.BestCompression)
	})
	for _, f := range files {
		h := &zip.FileHeader{Name: f.name, Method: zip.Deflate, Modified: epoch.UTC().Truncate(time.Second)}
		h.SetMode(f.mode.Perm())
		w, err := zw.CreateHeader(h)
		if err != nil {
			return err
		}
		if _, err := w.Write(f.data); err != nil {
			return err
		}
	}
	return zw.Close()
}
