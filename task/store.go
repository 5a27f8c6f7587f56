package task

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/mailwright/mailwright/oauthparams"
)

// TasksDir is the folder of task files inside the data folder.
const TasksDir = "tasks"

// ErrNoTask is returned (wrapped) when no task has the given name.
var ErrNoTask = errors.New("no such task")

// Store keeps task files in <dataDir>/tasks, one JSON file per task, written atomically.
type Store struct{ dir string }

// NewStore returns the task store of a data folder.
func NewStore(dataDir string) *Store { return &Store{dir: filepath.Join(dataDir, TasksDir)} }

// Dir is the folder holding the task files.
func (s *Store) Dir() string { return s.dir }

// FileName returns the file name a task of that name is stored under: the name with
// characters unsafe in file names replaced, lower case, plus ".json".
func FileName(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(name)) {
		switch {
		case r < 0x20 || strings.ContainsRune(`/\:*?"<>|.`, r):
			b.WriteByte('_')
		default:
			b.WriteRune(r)
		}
	}
	return b.String() + ".json"
}

// List returns every task, sorted by name. A file that does not parse is reported in errs
// (with its path) rather than hiding the others.
func (s *Store) List() (tasks []*Task, errs []error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, []error{fmt.Errorf("list tasks: %w", err)}
	}
	for _, e := range entries {
		if e.IsDir() || filepath.Ext(e.Name()) != ".json" {
			continue
		}
		t, err := LoadFile(filepath.Join(s.dir, e.Name()))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		tasks = append(tasks, t)
	}
	sort.Slice(tasks, func(i, j int) bool { return strings.ToLower(tasks[i].Name) < strings.ToLower(tasks[j].Name) })
	return tasks, errs
}

// Get loads the task named name (case-insensitive).
func (s *Store) Get(name string) (*Task, error) {
	t, err := LoadFile(filepath.Join(s.dir, FileName(name)))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("task %q: %w (mailwright task list shows the tasks)", name, ErrNoTask)
	}
	return t, err
}

// Put saves t (atomically, 0600), replacing a task of the same name.
func (s *Store) Put(t *Task) error {
	if strings.TrimSpace(t.Name) == "" {
		return errors.New("save task: the task needs a name")
	}
	data, err := t.Marshal()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("save task %q: %w", t.Name, err)
	}
	path := filepath.Join(s.dir, FileName(t.Name))
	// Names that differ only in characters a file name cannot hold ("a/b", "a:b", "a_b")
	// share a file: never replace another task that way.
	if old, err := LoadFile(path); err == nil && !strings.EqualFold(strings.TrimSpace(old.Name), strings.TrimSpace(t.Name)) {
		return fmt.Errorf("save task %q: its file %s already holds the task %q (the names differ only in characters a file name cannot hold): rename one of them", t.Name, path, old.Name)
	}
	if err := oauthparams.WriteFileAtomic(path, data, 0o600); err != nil {
		return fmt.Errorf("save task %q: %w", t.Name, err)
	}
	return nil
}

// Delete removes the task named name.
func (s *Store) Delete(name string) error {
	err := os.Remove(filepath.Join(s.dir, FileName(name)))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete task %q: %w", name, ErrNoTask)
	}
	if err != nil {
		return fmt.Errorf("delete task %q: %w", name, err)
	}
	return nil
}

// LoadFile reads and parses a task file; errors name the file.
func LoadFile(path string) (*Task, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t, err := Parse(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}
