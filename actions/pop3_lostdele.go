package actions

import (
	"fmt"
	"strings"
)

// Deletions lost with a session that ended without QUIT.
//
// POP3 deletes a message marked with DELE only when the session ends with QUIT (RFC 1939
// section 6). A POP3 Mail Loop with "only new" records a message as handled at Commit and,
// in the same write, that its deletion is pending (pop3_seen.go); then it sends DELE. If
// the session is cut or the process killed before QUIT, the server keeps the message, and
// since it is recorded as handled the loop would skip it for ever. So, when a loop with
// "only new" starts, it sends DELE again for every message on the server whose UIDL is
// recorded as handled and pending deletion; the QUIT that ends this session (POP3 Close
// or the end of the run) commits them, and only then are they removed from the record.
//
// The redo happens at the loop's start rather than in POP3 Open because only the loop has
// what it needs: its record (kept in the task's state under the account and server), the
// server's UIDLs (which it lists anyway) and the knowledge that the task wants "only new"
// semantics. A task that merely opens the same account (to count, or to download by
// number) deletes nothing it did not ask for.
//
// Safety: a UIDL is recorded as pending deletion only by a Commit whose loop item
// succeeded and whose body ran POP3 Delete Email on it, never in a dry run (the delete
// step does nothing there); a dry run only logs what it would redo. UIDLs no longer on the
// server are dropped from the record at the loop's start (begin), so it never holds more
// than the mailbox's messages. A UIDL the server lists more than once is left alone (its
// messages are not told apart).

// redoLostDeletes sends DELE for the messages of uidls (the server's UIDL listing) whose
// deletion the record says is pending. It runs in plan, after the record was pruned.
func (it *pop3Iter) redoLostDeletes(uidls []POP3Entry) error {
	if it.seen == nil || it.seen.pendingCount() == 0 {
		return nil
	}
	times := make(map[string]int, it.seen.pendingCount())
	for _, u := range uidls {
		if it.seen.PendingDelete(u.UIDL) {
			times[u.UIDL]++
		}
	}
	var nums []int
	var ids []string
	for _, u := range uidls {
		switch {
		case !it.seen.PendingDelete(u.UIDL) || it.s.Deleted(u.Number):
		case times[u.UIDL] > 1:
			it.log.Warn("pop3: a message recorded as pending deletion is not deleted: the server gives its UIDL to several messages", "uidl", u.UIDL)
		default:
			nums = append(nums, u.Number)
			ids = append(ids, u.UIDL)
		}
	}
	if len(nums) == 0 {
		return nil
	}
	what := fmt.Sprintf("delete %d messages whose deletion was lost when the previous session ended without QUIT", len(nums))
	if it.env.SkipDryRun(what, "connection", it.s.Name) {
		return nil
	}
	it.log.Info("pop3 mail loop: "+strings.Replace(what, "delete", "deleting", 1)+" (committed at QUIT)", "first_uidl", ids[0])
	err := it.s.deleteBatch(nums, func(i int, err error) {
		if err != nil {
			it.log.Warn("pop3: the server refused to delete a message whose deletion was lost; it is tried again next run", "number", nums[i], "uidl", ids[i], "error", err.Error())
			return
		}
		it.s.noteRecorded(it.env.State, it.log, ids[i])
	})
	if err != nil {
		return fmt.Errorf("%w (while deleting messages whose deletion was lost when the previous session ended without QUIT; they are tried again next run)", err)
	}
	return nil
}
