package app

import (
	"errors"
	"fmt"
	"io"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/storage"

	"github.com/mailwright/mailwright/task"
)

func (ts *TasksScreen) onImport() {
	d := dialog.NewFileOpen(func(rc fyne.URIReadCloser, err error) {
		if err != nil {
			dialog.ShowError(fmt.Errorf("import task: %w", err), ts.win)
			return
		}
		if rc == nil {
			return // cancelled
		}
		go ts.importFrom(rc)
	}, ts.win)
	d.SetFilter(storage.NewExtensionFileFilter([]string{".json"}))
	d.Show()
}

// importFrom reads, validates and adds a task file (background goroutine). A task of the
// same name is replaced only after the user agrees.
func (ts *TasksScreen) importFrom(rc fyne.URIReadCloser) {
	u := rc.URI()
	var t *task.Task
	var err error
	if u.Scheme() == "file" {
		rc.Close()
		t, err = task.LoadFile(u.Path())
	} else {
		t, err = task.Parse(rc)
		rc.Close()
		if err != nil {
			err = fmt.Errorf("%s: %w", u.Name(), err)
		}
	}
	if err == nil {
		if verr := task.Validate(t, ts.s.Registry); verr != nil {
			err = fmt.Errorf("%s: %w", u.Name(), verr)
		}
	}
	if err != nil {
		ts.s.do(func() { dialog.ShowError(fmt.Errorf("import task: %w", err), ts.win) })
		return
	}
	_, gerr := ts.s.Tasks.Get(t.Name)
	exists := gerr == nil
	if gerr != nil && !errors.Is(gerr, task.ErrNoTask) {
		exists = true // unreadable file of that name: still ask before overwriting it
	}
	if !exists {
		ts.importSave(t)
		return
	}
	ts.s.do(func() {
		dialog.ShowConfirm("Replace task?",
			fmt.Sprintf("A task named %q exists already. Replace it with the one from %s?", t.Name, u.Name()),
			func(ok bool) {
				if ok {
					go ts.importSave(t)
				}
			}, ts.win)
	})
}

func (ts *TasksScreen) importSave(t *task.Task) {
	if err := ts.s.Tasks.Put(t); err != nil {
		ts.s.do(func() { dialog.ShowError(fmt.Errorf("import task: %w", err), ts.win) })
	}
	ts.Refresh()
}

func (ts *TasksScreen) onExport() {
	t := ts.current()
	if t == nil {
		return
	}
	d := dialog.NewFileSave(func(wc fyne.URIWriteCloser, err error) {
		if err != nil {
			dialog.ShowError(fmt.Errorf("export task %q: %w", t.Name, err), ts.win)
			return
		}
		if wc == nil {
			return
		}
		go func() {
			if err := tasksWriteTask(wc, t); err != nil {
				ts.s.do(func() { dialog.ShowError(err, ts.win) })
			}
		}()
	}, ts.win)
	d.SetFileName(task.FileName(t.Name))
	d.Show()
}

// tasksWriteTask writes t as a task file to w and closes it. Parameter sets are referred
// to by name, not copied.
func tasksWriteTask(w io.WriteCloser, t *task.Task) error {
	data, err := t.Marshal()
	if err == nil {
		_, err = w.Write(data)
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("export task %q: %w", t.Name, err)
	}
	return nil
}
