package actions

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"

	"github.com/emersion/go-imap/v2"
)

// imapLoopCheckpointKey is the StateStore key of an IMAP Mail Loop's progress (the task
// engine scopes it to the task and step).
const imapLoopCheckpointKey = "imap.checkpoint"

// The on_uidvalidity_change policies.
const (
	imapLoopUIDVFail      = "fail"
	imapLoopUIDVReprocess = "reprocess"
	imapLoopUIDVFromNow   = "from_now"
)

// imapLoopCheckpoint records which messages of a folder an "only new" loop has handled.
// Every candidate UID ≤ LastUID is done; Done lists the done UIDs above LastUID (handled
// out of order: newest first, a cap, or an older message whose body failed). Because a
// failed message is never in Done and LastUID never passes it, it is retried next run,
// and nothing done is handled twice.
type imapLoopCheckpoint struct {
	UIDValidity uint32   `json:"uidvalidity"`
	Folder      string   `json:"folder,omitempty"`
	LastUID     uint32   `json:"last_uid"`
	Done        []uint32 `json:"done,omitempty"` // sorted, all > LastUID
}

// imapLoopLoadCheckpoint reads the checkpoint; found is false on the first run.
func imapLoopLoadCheckpoint(st StateStore) (cp imapLoopCheckpoint, found bool, err error) {
	raw, ok, err := st.Load(imapLoopCheckpointKey)
	if err != nil {
		return cp, false, fmt.Errorf("read the loop's progress from the last run: %w", err)
	}
	if !ok || raw == "" {
		return cp, false, nil
	}
	if err := json.Unmarshal([]byte(raw), &cp); err != nil {
		return cp, false, fmt.Errorf("the loop's saved progress is damaged (%v): reset the step's state to start over", err)
	}
	slices.Sort(cp.Done)
	return cp, true, nil
}

// save stores the checkpoint durably.
func (cp *imapLoopCheckpoint) save(st StateStore) error {
	b, err := json.Marshal(cp)
	if err != nil {
		return fmt.Errorf("encode the loop's progress: %w", err)
	}
	if err := st.Store(imapLoopCheckpointKey, string(b)); err != nil {
		return fmt.Errorf("save the loop's progress: %w", err)
	}
	return nil
}

// done reports whether uid was handled.
func (cp *imapLoopCheckpoint) done(uid imap.UID) bool {
	if uint32(uid) <= cp.LastUID {
		return true
	}
	_, found := slices.BinarySearch(cp.Done, uint32(uid))
	return found
}

// markDone records uid as handled.
func (cp *imapLoopCheckpoint) markDone(uid imap.UID) {
	if uint32(uid) <= cp.LastUID {
		return
	}
	if i, found := slices.BinarySearch(cp.Done, uint32(uid)); !found {
		cp.Done = slices.Insert(cp.Done, i, uint32(uid))
	}
}

// advance moves LastUID forward over the ascending candidate list all while the
// candidates are done, then drops Done entries ≤ LastUID. It reports a change.
func (cp *imapLoopCheckpoint) advance(all []imap.UID) bool {
	before, nDone := cp.LastUID, len(cp.Done)
	i, _ := slices.BinarySearch(all, imap.UID(cp.LastUID+1))
	for ; i < len(all) && cp.done(all[i]); i++ {
		cp.LastUID = uint32(all[i])
	}
	j, found := slices.BinarySearch(cp.Done, cp.LastUID)
	if found {
		j++
	}
	cp.Done = cp.Done[j:]
	return cp.LastUID != before || len(cp.Done) != nDone
}

// imapLoopResolveCheckpoint applies the on_uidvalidity_change policy to a loaded
// checkpoint. uidNext asks the server for UIDNEXT (from_now). It returns the checkpoint to
// use and whether it must be saved now.
func imapLoopResolveCheckpoint(cp imapLoopCheckpoint, found bool, folder string, uidValidity uint32, policy string,
	uidNext func() (imap.UID, error), log *slog.Logger) (imapLoopCheckpoint, bool, error) {
	if !found {
		log.Info("imap loop: first run with only_new: every matching message is new", "folder", folder, "uidvalidity", uidValidity)
		return imapLoopCheckpoint{UIDValidity: uidValidity, Folder: folder}, false, nil
	}
	sameFolder := cp.Folder == "" || cp.Folder == folder
	if cp.UIDValidity == uidValidity && sameFolder {
		log.Info("imap loop: continuing after the last run", "folder", folder, "last_uid", cp.LastUID, "done_above", len(cp.Done))
		return cp, false, nil
	}
	why := fmt.Sprintf("folder %q has a new UIDVALIDITY (%d, was %d): the server renumbered its messages", folder, uidValidity, cp.UIDValidity)
	if !sameFolder {
		why = fmt.Sprintf("the loop now reads folder %q, but its saved progress is for folder %q", folder, cp.Folder)
	}
	switch policy {
	case imapLoopUIDVReprocess:
		log.Warn("imap loop: "+why+"; forgetting the saved progress and handling every matching message again (on_uidvalidity_change = reprocess)", "folder", folder)
		return imapLoopCheckpoint{UIDValidity: uidValidity, Folder: folder}, true, nil
	case imapLoopUIDVFromNow:
		next, err := uidNext()
		if err != nil {
			return cp, false, err
		}
		last := uint32(0)
		if next > 0 {
			last = uint32(next) - 1
		}
		log.Warn("imap loop: "+why+"; skipping the messages already there and handling only mail that arrives from now on (on_uidvalidity_change = from_now)", "folder", folder, "last_uid", last)
		return imapLoopCheckpoint{UIDValidity: uidValidity, Folder: folder, LastUID: last}, true, nil
	default:
		return cp, false, fmt.Errorf("imap loop: %s, so the progress saved by earlier runs no longer says which messages were handled. "+
			"Choose under \"If the folder's UIDVALIDITY changes\" (on_uidvalidity_change): reprocess to handle every matching message again, "+
			"or from_now to skip the messages already in the folder and handle only new mail", why)
	}
}
