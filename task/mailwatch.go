package task

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailwright/mailwright/actions"
)

// MailWatcher is the new_mail trigger: it keeps an IMAP connection on the folder in IDLE
// (polling with NOOP where the server has no IDLE) and calls fire when mail arrives. It
// never stops on its own: a lost connection is re-established with backoff (and mail that
// arrived meanwhile fires once the connection is back), and IDLE is renewed regularly so a
// connection that died silently is noticed.
type MailWatcher struct {
	Tokens actions.TokenProvider
	Log    *slog.Logger
	Clock  Clock // nil: the real clock
	// Renew is how long one IDLE lasts before it is renewed (default 9 min; RFC 2177 asks for
	// less than 29).
	Renew time.Duration
	// Poll is the NOOP interval for servers without IDLE (default 1 min).
	Poll time.Duration
	// MaxBackoff caps the wait between reconnection attempts (default 5 min).
	MaxBackoff time.Duration
}

// Watch runs until ctx ends.
func (w *MailWatcher) Watch(ctx context.Context, t *Task, tr Trigger, fire func()) {
	clock := w.Clock
	if clock == nil {
		clock = realClock{}
	}
	log := w.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("task", t.Name, "trigger", TriggerNewMail)
	maxBackoff := w.MaxBackoff
	if maxBackoff <= 0 {
		maxBackoff = 5 * time.Minute
	}
	backoff := time.Second
	var uidNext imap.UID // what the last connection saw; survives reconnections
	for {
		connected := false
		err := w.once(ctx, clock, tr, log, &uidNext, fire, func() { connected = true })
		if ctx.Err() != nil {
			return
		}
		if connected {
			backoff = time.Second
		}
		log.Warn("new-mail trigger lost its connection; reconnecting", "in", backoff.String(), "error", fmt.Sprint(err))
		select {
		case <-ctx.Done():
			return
		case <-clock.After(backoff):
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// once connects, selects the folder and waits for mail until the connection fails.
func (w *MailWatcher) once(ctx context.Context, clock Clock, tr Trigger, log *slog.Logger, uidNext *imap.UID, fire func(), connected func()) error {
	params := maps.Clone(tr.Mail)
	folder := params["folder"]
	delete(params, "folder")
	if folder == "" {
		folder = "INBOX"
	}
	vals, err := actions.NewIMAPOpen().Schema().Resolve(params)
	if err != nil {
		return err
	}
	cc, err := actions.ParseConn("imap", vals)
	if err != nil {
		return err
	}
	wake := make(chan struct{}, 1)
	cc.IMAPOptions = &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				select {
				case wake <- struct{}{}:
				default:
				}
			}
		},
	}}
	c, err := actions.OpenIMAP(ctx, cc, w.Tokens)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	sel, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return fmt.Errorf("watch folder %q: %w", folder, err)
	}
	connected()
	log.Info("watching for new mail", "server", cc.Addr(), "folder", folder, "idle", c.Caps().Has(imap.CapIdle))
	if *uidNext == 0 {
		*uidNext = sel.UIDNext
	}
	renew, poll := w.Renew, w.Poll
	if renew <= 0 {
		renew = 9 * time.Minute
	}
	if poll <= 0 {
		poll = time.Minute
	}
	for {
		// New mail since the last look (also mail that came while we were disconnected).
		if err := w.check(c, uidNext, log, fire); err != nil {
			return err
		}
		if !c.Caps().Has(imap.CapIdle) {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-c.Closed():
				return fmt.Errorf("the server closed the connection")
			case <-clock.After(poll):
			}
			if err := c.Noop().Wait(); err != nil {
				return err
			}
			continue
		}
		idle, err := c.Idle()
		if err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.Closed():
			return fmt.Errorf("the server closed the connection")
		case <-wake:
		case <-clock.After(renew):
		}
		// DONE must be answered promptly; a dead connection is closed by the watchdog.
		done := make(chan error, 1)
		go func() {
			if err := idle.Close(); err != nil {
				done <- err
				return
			}
			done <- idle.Wait()
		}()
		select {
		case err = <-done:
		case <-time.After(time.Minute):
			c.Close()
			err = fmt.Errorf("the server did not answer DONE within a minute")
		}
		if err != nil {
			return err
		}
	}
}

// check fires when the folder holds a UID at or above uidNext, and moves uidNext past it.
func (w *MailWatcher) check(c *imapclient.Client, uidNext *imap.UID, log *slog.Logger, fire func()) error {
	var set imap.UIDSet
	set.AddRange(*uidNext, 0)
	data, err := c.UIDSearch(&imap.SearchCriteria{UID: []imap.UIDSet{set}}, nil).Wait()
	if err != nil {
		return err
	}
	var top imap.UID
	for _, u := range data.AllUIDs() {
		if u >= *uidNext && u > top {
			top = u
		}
	}
	if top == 0 {
		return nil
	}
	*uidNext = top + 1
	log.Info("new mail: starting the task")
	fire()
	return nil
}
