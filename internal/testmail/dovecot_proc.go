package testmail

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// dovecotProc is one running Dovecot master process.
type dovecotProc struct {
	cmd      *exec.Cmd
	logFile  string
	exited   chan struct{} // closed once the process has exited and been reaped
	waitErr  error         // Wait's result; read only after exited is closed
	stopOnce sync.Once
	stopErr  error
}

// launch starts `dovecot -F -c conf` with its standard output and error appended to the log.
func launch(bin, conf, logFile string) (*dovecotProc, error) {
	logf, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_TRUNC|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open Dovecot log: %w", err)
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(bin, "-F", "-c", conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = parentDeathSignal()
	p := &dovecotProc{cmd: cmd, logFile: logFile, exited: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// Linux sends the parent-death signal when the thread that forked the child exits,
		// so keep this goroutine on its own thread for as long as Dovecot runs.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("run %s: %w", bin, err)
	}
	return p, nil
}

// alive returns an error once the process has exited.
func (p *dovecotProc) alive() error {
	select {
	case <-p.exited:
		return fmt.Errorf("dovecot exited: %v", p.waitErr)
	default:
		return nil
	}
}

// stop asks the master to shut down (SIGTERM: it stops its children, closes every
// listener and exits once they are gone), hurries the shutdown along and waits for the
// master to exit; after 10 s it kills it. Safe to call more than once.
func (p *dovecotProc) stop() error {
	p.stopOnce.Do(func() {
		var logSize int64
		if fi, err := os.Stat(p.logFile); err == nil {
			logSize = fi.Size()
		}
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			p.stopErr = fmt.Errorf("signal Dovecot: %w", err)
		}
		hurryShutdown(p.cmd.Process, p.logFile, logSize, p.exited)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
			p.stopErr = errors.New("dovecot did not stop within 10 s of SIGTERM; killed it")
		}
	})
	return p.stopErr
}

// parentDeathSignal asks Linux to send Dovecot's master SIGTERM if the test binary dies
// without running its cleanups (say, a go test -timeout panic), so no Dovecot outlives it.
// Pdeathsig exists only on Linux; setting it by reflection keeps the package portable.
func parentDeathSignal() *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{}
	if f := reflect.ValueOf(attr).Elem().FieldByName("Pdeathsig"); f.IsValid() && f.CanSet() {
		f.Set(reflect.ValueOf(syscall.SIGTERM))
	}
	return attr
}

// hurryShutdown cuts Dovecot's shutdown from about a second to a few milliseconds. On
// SIGTERM the master closes a pipe most children watch, so they exit at once; but processes
// still serving a client, anvil while they run, and the log process (which waits for the
// master's end of the log pipe) stay until the master's one-second kill timer. So once the
// master has logged that it is shutting down, the remaining children get SIGTERM now, the
// log process last, as the master itself would do. The master then often sits out a
// sleep(1) before it looks again, with nothing left to do but exit: once no child has been
// alive for a few milliseconds, it is killed. This reads Linux's /proc; elsewhere shutdown
// just takes about a second.
func hurryShutdown(master *os.Process, logFile string, logFrom int64, exited <-chan struct{}) {
	signalled := map[int]bool{}
	shuttingDown := false
	var allGone time.Time
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
		select {
		case <-exited:
			return
		default:
		}
		if !shuttingDown {
			shuttingDown = logContains(logFile, logFrom, "master: Warning: Killed with signal 15")
		}
		kids, err := liveChildren(master.Pid)
		if err != nil {
			return
		}
		switch {
		case !shuttingDown:
		case len(kids) == 0:
			if allGone.IsZero() {
				allGone = time.Now()
			} else if time.Since(allGone) > 5*time.Millisecond {
				_ = master.Kill()
				return
			}
		default:
			var logs, others []int
			for pid, comm := range kids {
				if comm == "log" {
					logs = append(logs, pid)
				} else {
					others = append(others, pid)
				}
			}
			if len(others) == 0 {
				others = logs
			}
			for _, pid := range others {
				if proc, err := os.FindProcess(pid); err == nil && !signalled[pid] {
					_ = proc.Signal(syscall.SIGTERM)
					signalled[pid] = true
				}
			}
		}
		time.Sleep(time.Millisecond) // poll interval while the children exit
	}
}

// logContains reports whether the log has text after offset from.
func logContains(logFile string, from int64, text string) bool {
	f, err := os.Open(logFile)
	if err != nil {
		return false
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, from, 1<<20))
	return err == nil && bytes.Contains(b, []byte(text))
}

// liveChildren maps pid's child processes that have not exited to their command names
// (Linux only).
func liveChildren(pid int) (map[int]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil, fmt.Errorf("list children of %d: %w", pid, err)
	}
	kids := map[int]string{}
	for _, f := range strings.Fields(string(b)) {
		kid, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", kid))
		if err != nil {
			continue // gone
		}
		// "pid (comm) state …": comm may contain spaces and parentheses.
		open, end := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')')
		if open < 0 || end < open || end+2 >= len(stat) || stat[end+2] == 'Z' {
			continue // exited, not yet reaped
		}
		kids[kid] = string(stat[open+1 : end])
	}
	return kids, nil
}
