package pluginhost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/protocol"
	pb "github.com/sluicehq/sluice/sdk/go/protocol/pluginv1"
)

// DiscoverError is the failure of one binary during discovery.
type DiscoverError struct {
	Path string
	Err  error
}

func (e *DiscoverError) Error() string { return e.Err.Error() }
func (e *DiscoverError) Unwrap() error { return e.Err }

// Discover asks the plugin binaries in dir (its executable files, not its subdirectories) for
// their specs. It runs only pinned binaries: a file NAME.sha256 beside the binary holds its sum
// (a binary whose sum differs is refused), or Options.Pins holds it, or Options.AllowUnpinned is
// set. The others are not started; each is reported as an *UnpinnedError (matching ErrUnpinned).
// Discover returns the plugins that answered, sorted by name, and the failures of the others
// joined as *DiscoverError values. An empty dir returns nothing.
func (h *Host) Discover(ctx context.Context, dir string) ([]*Plugin, error) {
	if dir == "" {
		return nil, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("discover plugins: %w", err)
	}
	var plugins []*Plugin
	var errs []error
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0 {
			continue
		}
		path, err := filepath.Abs(filepath.Join(dir, e.Name()))
		if err != nil {
			errs = append(errs, &DiscoverError{Path: e.Name(), Err: fmt.Errorf("plugin %s: %w", e.Name(), err)})
			continue
		}
		p, err := h.discover(ctx, path)
		if err != nil {
			errs = append(errs, &DiscoverError{Path: path, Err: err})
			continue
		}
		plugins = append(plugins, p)
	}
	sort.Slice(plugins, func(i, j int) bool { return plugins[i].Name < plugins[j].Name })
	return plugins, errors.Join(errs...)
}

// discover hashes the binary at path and, when it is pinned, runs it for its specs.
func (h *Host) discover(ctx context.Context, path string) (*Plugin, error) {
	sum, err := fileSHA256(path)
	if err != nil {
		return nil, err
	}
	pin, err := readSidecar(path + ".sha256")
	switch {
	case err != nil:
		return nil, err
	case pin != "" && pin != sum:
		return nil, &ChecksumError{Path: path, Want: pin, Got: sum}
	case pin == "" && !h.opts.AllowUnpinned && !slices.Contains(h.pins, sum):
		return nil, &UnpinnedError{Path: path, SHA256: sum}
	}
	return h.inspect(ctx, path, sum)
}

// ErrUnpinned is matched by the error for a binary that Discover did not run because nothing
// pins it.
var ErrUnpinned = errors.New("plugin binary not pinned")

// UnpinnedError names a binary that Discover did not run because nothing pins it, with the sum
// a pin would have to hold.
type UnpinnedError struct {
	Path   string
	SHA256 string
}

func (e *UnpinnedError) Error() string {
	return fmt.Sprintf("plugin %s: not run: nothing pins its sha256 %s", filepath.Base(e.Path), e.SHA256)
}

// Is makes the error match ErrUnpinned.
func (e *UnpinnedError) Is(target error) bool { return target == ErrUnpinned }

// inspect starts the plugin binary at path, pinned to sum, asks for its specs and stops it.
func (h *Host) inspect(ctx context.Context, path, sum string) (*Plugin, error) {
	p := &Plugin{Name: filepath.Base(path), Path: path, SHA256: sum}
	pr, err := h.start(ctx, p, sum, nil)
	if err != nil {
		return nil, err
	}
	defer h.kill(pr)
	cctx, cancel := context.WithTimeout(ctx, h.opts.CallTimeout)
	defer cancel()
	resp, err := pr.conn.Specs(cctx, &pb.SpecsRequest{})
	if err != nil {
		return nil, pr.callError("specs", err)
	}
	p.Version, p.SDKVersion, p.Protocol = resp.Version, resp.SdkVersion, pr.client.NegotiatedVersion()
	p.Features = resp.Features
	for _, ps := range resp.Specs {
		s, err := protocol.FromSpec(ps)
		if err != nil {
			return nil, fmt.Errorf("plugin %s: specs: %w", p.Name, err)
		}
		if s.Kind != connector.KindSource && s.Kind != connector.KindSink {
			return nil, fmt.Errorf("plugin %s: specs: connector %q has kind %q, want source or sink", p.Name, s.Name, s.Kind)
		}
		for _, f := range s.Fields {
			if f.Name == FieldSHA256 || f.Name == FieldEnv {
				return nil, fmt.Errorf("plugin %s: connector %q declares field %q, which is reserved for the host", p.Name, s.Name, f.Name)
			}
		}
		p.Specs = append(p.Specs, s)
	}
	return p, nil
}

// ChecksumError says a plugin binary does not have the pinned sha256.
type ChecksumError struct {
	Path      string
	Want, Got string
}

// Is makes a checksum mismatch match connector.ErrPermanent: retrying cannot help.
func (e *ChecksumError) Is(target error) bool { return target == connector.ErrPermanent }

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("plugin %s: checksum mismatch: the binary's sha256 is %s, but %s is pinned", e.Path, e.Got, e.Want)
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("plugin %s: %w", path, err)
	}
	defer f.Close()
	hs := sha256.New()
	if _, err := io.Copy(hs, f); err != nil {
		return "", fmt.Errorf("plugin %s: checksum: %w", path, err)
	}
	return hex.EncodeToString(hs.Sum(nil)), nil
}

func readSidecar(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("plugin: read checksum file: %w", err)
	}
	fs := strings.Fields(string(b))
	if len(fs) == 0 {
		return "", fmt.Errorf("checksum file %s is empty", path)
	}
	return strings.ToLower(fs[0]), nil
}

// configParts splits a plugin connector's configuration into the reserved host fields and what
