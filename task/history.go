package task

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver "sqlite"
)

// HistoryFile is the database file in the data folder.
const HistoryFile = "history.db"

// History is the run history and the mailbox checkpoints, in an embedded SQLite database
// shared (with locking) by the window, the CLI and `mailwright serve`.
type History struct {
	db   *sql.DB
	path string
}

const historySchema = `
CREATE TABLE IF NOT EXISTS runs (
	id TEXT PRIMARY KEY, task TEXT NOT NULL, trigger TEXT NOT NULL DEFAULT '',
	start_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL DEFAULT 0, outcome TEXT NOT NULL DEFAULT 'running',
	error TEXT NOT NULL DEFAULT '', steps INTEGER NOT NULL DEFAULT 0, items INTEGER NOT NULL DEFAULT 0,
	failures INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS runs_task_start ON runs(task, start_ms);
CREATE TABLE IF NOT EXISTS logs (
	run_id TEXT NOT NULL, seq INTEGER NOT NULL, time_ms INTEGER NOT NULL, level TEXT NOT NULL,
	step TEXT NOT NULL DEFAULT '', message TEXT NOT NULL, attrs TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (run_id, seq));
CREATE TABLE IF NOT EXISTS checkpoints (
	task TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, updated_ms INTEGER NOT NULL,
	PRIMARY KEY (task, key));
`

// OpenHistory opens (creating if needed) the history database in dataDir.
func OpenHistory(dataDir string) (*History, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("open history: %w", err)
	}
	path := filepath.Join(dataDir, HistoryFile)
	// Created 0600 before SQLite opens it: SQLite gives its -wal and -shm files the mode of
	// the database file, so the run logs are never readable by others, not even briefly.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600); err == nil {
		f.Close()
	}
	// WAL lets readers (the window) work while a run writes; synchronous FULL makes each
	// committed checkpoint survive a power cut; busy_timeout waits for other processes.
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open history %s: %w", path, err)
	}
	if _, err := db.Exec(historySchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("open history %s: %w (if the file is damaged, move it away: run history is lost, tasks and parameter sets are not)", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
		db.Close()
		return nil, fmt.Errorf("open history %s: %w", path, err)
	}
	return &History{db: db, path: path}, nil
}

// Close closes the database.
func (h *History) Close() error { return h.db.Close() }

// Checkpoints returns the StateStore of one task: loops keep "only new since last run"
// progress in it, committed durably at each message.
func (h *History) Checkpoints(task string) *Checkpoints { return &Checkpoints{h: h, task: task} }

// Checkpoints is the checkpoint store of one task (an actions.StateStore).
type Checkpoints struct {
	h    *History
	task string
}

// Load returns the value stored under key.
func (c *Checkpoints) Load(key string) (string, bool, error) {
	var v string
	err := c.h.db.QueryRow(`SELECT value FROM checkpoints WHERE task = ? AND key = ?`, c.task, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read checkpoint %s of task %q: %w", key, c.task, err)
	}
	return v, true, nil
}

// Store saves value under key; when it returns, the value is on disk.
func (c *Checkpoints) Store(key, value string) error {
	_, err := c.h.db.Exec(`INSERT INTO checkpoints(task, key, value, updated_ms) VALUES(?, ?, ?, ?)
		ON CONFLICT(task, key) DO UPDATE SET value = excluded.value, updated_ms = excluded.updated_ms`,
		c.task, key, value, time.Now().UnixMilli())
	if err != nil {
		return fmt.Errorf("save checkpoint %s of task %q: %w", key, c.task, err)
	}
	return nil
}

// RunRecord is one run as the history keeps it.
type RunRecord struct {
	ID       string    `json:"id"`
	Task     string    `json:"task"`
	Trigger  string    `json:"trigger"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end,omitzero"`
	Outcome  string    `json:"outcome"` // running, success, failed, cancelled
	Error    string    `json:"error,omitempty"`
	Steps    int       `json:"steps"`
	Items    int       `json:"items"`
	Failures int       `json:"failures"`
}

// LogLine is one log line of a run.
type LogLine struct {
	Time    time.Time `json:"time"`
	Level   string    `json:"level"`
	Step    string    `json:"step,omitempty"`
	Message string    `json:"message"`
	Attrs   string    `json:"attrs,omitempty"`
}

// BeginRun records a run as running (so a crashed run shows up as such).
func (h *History) BeginRun(ctx context.Context, id, task, trigger string, start time.Time) error {
	_, err := h.db.ExecContext(ctx, `INSERT INTO runs(id, task, trigger, start_ms) VALUES(?, ?, ?, ?)`, id, task, trigger, start.UnixMilli())
	if err != nil {
		return fmt.Errorf("record run of task %q: %w", task, err)
	}
	return nil
}

// EndRun records a run's result.
func (h *History) EndRun(res *Result) error {
	msg := ""
	if res.Err != nil {
		msg = res.Err.Error()
	}
	_, err := h.db.Exec(`UPDATE runs SET end_ms = ?, outcome = ?, error = ?, steps = ?, items = ?, failures = ? WHERE id = ?`,
		res.End.UnixMilli(), res.Outcome, msg, res.Steps, res.Items, res.Failures, res.RunID)
	if err != nil {
		return fmt.Errorf("record end of run %s: %w", res.RunID, err)
	}
	return nil
}

// Runs returns the latest runs, newest first; task "" means every task.
func (h *History) Runs(task string, limit int) ([]RunRecord, error) {
	if limit <= 0 {
		limit = 50
	}
	return h.query(`WHERE (? = '' OR task = ?) ORDER BY start_ms DESC, id DESC LIMIT ?`, task, task, limit)
}

// Run returns one run and its log lines.
func (h *History) Run(id string) (RunRecord, []LogLine, error) {
	runs, err := h.query(`WHERE id = ?`, id)
	if err != nil {
		return RunRecord{}, nil, err
	}
	if len(runs) == 0 {
		return RunRecord{}, nil, fmt.Errorf("no run %q in the history (see mailwright history)", id)
	}
	rows, err := h.db.Query(`SELECT time_ms, level, step, message, attrs FROM logs WHERE run_id = ? ORDER BY seq`, id)
	if err != nil {
		return RunRecord{}, nil, fmt.Errorf("read log of run %s: %w", id, err)
	}
	defer rows.Close()
	var lines []LogLine
	for rows.Next() {
		var l LogLine
		var ms int64
		if err := rows.Scan(&ms, &l.Level, &l.Step, &l.Message, &l.Attrs); err != nil {
			return RunRecord{}, nil, fmt.Errorf("read log of run %s: %w", id, err)
		}
		l.Time = time.UnixMilli(ms)
		lines = append(lines, l)
	}
	return runs[0], lines, rows.Err()
}

func (h *History) query(where string, args ...any) ([]RunRecord, error) {
	rows, err := h.db.Query(`SELECT id, task, trigger, start_ms, end_ms, outcome, error, steps, items, failures FROM runs `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("read run history: %w", err)
	}
	defer rows.Close()
	var out []RunRecord
	for rows.Next() {
		var r RunRecord
		var start, end int64
		if err := rows.Scan(&r.ID, &r.Task, &r.Trigger, &start, &end, &r.Outcome, &r.Error, &r.Steps, &r.Items, &r.Failures); err != nil {
			return nil, fmt.Errorf("read run history: %w", err)
		}
		r.Start = time.UnixMilli(start)
		if end > 0 {
			r.End = time.UnixMilli(end)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Prune deletes runs (and their logs) that started before cutoff; checkpoints stay.
func (h *History) Prune(cutoff time.Time) (int64, error) {
	tx, err := h.db.Begin()
	if err != nil {
		return 0, fmt.Errorf("prune history: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`DELETE FROM logs WHERE run_id IN (SELECT id FROM runs WHERE start_ms < ?)`, cutoff.UnixMilli()); err != nil {
		return 0, fmt.Errorf("prune history: %w", err)
	}
	res, err := tx.Exec(`DELETE FROM runs WHERE start_ms < ?`, cutoff.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("prune history: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, tx.Commit()
}
