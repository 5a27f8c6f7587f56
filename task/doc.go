// Package task will hold Mailwright's task engine: task files, {variable} expansion, the
// runner with cancellation and progress, run history and mailbox checkpoints, and the
// scheduler behind `mailwright serve`. It uses package actions and never imports Fyne.
package task
