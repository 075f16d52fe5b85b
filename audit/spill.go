package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
)

// spillFile is the append-only file a writer's events go to while MongoDB cannot take them: one
// JSON-encoded Event per line, in chain order, fsynced after every batch. While it exists, every
// new batch goes to it too (behind the events already in it), so replaying it front to back
// into MongoDB stores the chain in order. It is removed once replayed to its end.
type spillFile struct {
	path string

	mu   sync.Mutex
	f    *os.File // open for appending while the file exists; nil when there is none
	size int64    // bytes of complete lines

	bytes atomic.Int64 // size, for Stats without the lock
}

// SpillFileName is the name of the spill file of instance, in WriterConfig.SpillDir.
func SpillFileName(instance string) string {
	safe := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, instance)
	if len(safe) > 64 {
		safe = safe[:64]
	}
	sum := sha256.Sum256([]byte(instance))
	return "audit-spill-" + safe + "-" + hex.EncodeToString(sum[:4]) + ".jsonl"
}

// openSpill opens the spill file of instance in dir, if one was left by an earlier run, and
// returns the last event in it (nil if there is none). A last line cut short by a crash (never
// acknowledged as durable: the batch's fsync had not returned) is truncated away; a line that
// does not decode elsewhere is an error, since replaying past it would break the chain.
func openSpill(dir, instance string) (*spillFile, *Event, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("audit spill dir: %w", err)
	}
	s := &spillFile{path: filepath.Join(dir, SpillFileName(instance))}
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_APPEND, 0o600)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("open audit spill file: %w", err)
	}
	var last *Event
	var good int64
	r := bufio.NewReaderSize(f, 1<<16)
	for {
		line, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			break // an unterminated last line is a torn write
		}
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("read audit spill file: %w", err)
		}
		var e Event
		if err := json.Unmarshal(line, &e); err != nil {
			if _, peekErr := r.Peek(1); errors.Is(peekErr, io.EOF) {
				break // a torn last line
			}
			f.Close()
			return nil, nil, fmt.Errorf("audit spill file %s is corrupt at byte %d: %w", s.path, good, err)
		}
		good += int64(len(line))
		last = &e
	}
	if good == 0 {
		f.Close()
		if err := os.Remove(s.path); err != nil {
			return nil, nil, fmt.Errorf("remove empty audit spill file: %w", err)
		}
		return s, nil, nil
	}
	if err := f.Truncate(good); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("truncate audit spill file: %w", err)
	}
	s.f, s.size = f, good
	s.bytes.Store(good)
	return s, last, nil
}

// active reports whether the spill file exists (holds events not yet replayed).
func (s *spillFile) active() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.f != nil
}

// end is the offset after the last complete line.
func (s *spillFile) end() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size
}

// append writes events at the end of the file (creating it if needed) and fsyncs it.
func (s *spillFile) append(events []Event) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, e := range events {
		if err := enc.Encode(e); err != nil { // Encode ends each with '\n'
			return fmt.Errorf("encode spilled event: %w", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		f, err := os.OpenFile(s.path, os.O_RDWR|os.O_CREATE|os.O_APPEND|os.O_TRUNC, 0o600)
		if err != nil {
			return fmt.Errorf("create audit spill file: %w", err)
		}
		if err := syncDir(filepath.Dir(s.path)); err != nil {
			f.Close()
			_ = os.Remove(s.path)
			return err
		}
		s.f, s.size = f, 0
	}
	if _, err := s.f.Write(buf.Bytes()); err != nil {
		_ = s.f.Truncate(s.size) // leave no partial line behind
		return fmt.Errorf("write audit spill file: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		_ = s.f.Truncate(s.size)
		return fmt.Errorf("sync audit spill file: %w", err)
	}
	s.size += int64(buf.Len())
	s.bytes.Store(s.size)
	return nil
}

// read decodes the events between offsets from and to, in order, and hands them to fn in chunks
// of at most chunk events. It returns the offset after the last chunk fn accepted.
func (s *spillFile) read(from, to int64, chunk int, fn func([]Event) error) (int64, error) {
	f, err := os.Open(s.path)
	if err != nil {
		return from, fmt.Errorf("open audit spill file: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(io.NewSectionReader(f, from, to-from), 1<<16)
	done := from
	pending := from
	events := make([]Event, 0, chunk)
	flush := func() error {
		if len(events) == 0 {
			return nil
		}
		if err := fn(events); err != nil {
			return err
		}
		done = pending
		events = events[:0]
		return nil
	}
	for {
		line, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return done, fmt.Errorf("read audit spill file: %w", err)
		}
		var e Event
		if err := json.Unmarshal(line, &e); err != nil {
			return done, fmt.Errorf("audit spill file corrupt at byte %d: %w", pending, err)
		}
		pending += int64(len(line))
		events = append(events, e)
		if len(events) == chunk {
			if err := flush(); err != nil {
				return done, err
			}
		}
	}
	return done, flush()
}

// removeIfReplayed removes the file if everything in it, up to offset replayed, is in MongoDB
// and nothing was appended since. It reports whether the file is gone.
func (s *spillFile) removeIfReplayed(replayed int64) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return true, nil
	}
	if s.size != replayed {
		return false, nil
	}
	_ = s.f.Close()
	s.f, s.size = nil, 0
	s.bytes.Store(0)
	if err := os.Remove(s.path); err != nil {
		// Harmless: everything in it is stored, and replaying it again is idempotent.
		return true, fmt.Errorf("remove replayed audit spill file: %w", err)
	}
	return true, syncDir(filepath.Dir(s.path))
}

// close closes the file, leaving it (and what it holds) for the next start.
func (s *spillFile) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

// syncDir makes a file's creation or removal in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open audit spill dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync audit spill dir: %w", err)
	}
	return nil
}
