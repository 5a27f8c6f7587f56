package task

import (
	"fmt"
	"time"

	"github.com/robfig/cron/v3"
)

// cronParser accepts five fields (minute first) or six (seconds first), and descriptors
// such as @hourly.
func cronParser() cron.Parser {
	return cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
}

// ParseCron checks a cron expression and returns its schedule.
func ParseCron(expr string) (cron.Schedule, error) {
	s, err := cronParser().Parse(expr)
	if err != nil {
		return nil, fmt.Errorf("cron %q: %v (five fields \"min hour day month weekday\", six with seconds first, or @hourly/@daily)", expr, err)
	}
	return s, nil
}

// Next returns when the trigger fires next after t, or the zero time if it never will (a
// once trigger in the past, a new_mail trigger, which fires on mail instead). last is when
// it last fired (zero if never); interval triggers count from it.
func (tr Trigger) Next(t, last time.Time) time.Time {
	switch tr.Type {
	case TriggerCron:
		s, err := ParseCron(tr.Cron)
		if err != nil {
			return time.Time{}
		}
		return s.Next(t)
	case TriggerInterval:
		d, err := time.ParseDuration(tr.Every)
		if err != nil || d < time.Second {
			return time.Time{}
		}
		if last.IsZero() {
			return t.Add(d)
		}
		n := last.Add(d)
		if !n.After(t) {
			// Fell behind (machine asleep, long run): the next slot after t, on the grid.
			n = n.Add(((t.Sub(n) / d) + 1) * d)
		}
		return n
	case TriggerOnce:
		at, err := time.Parse(time.RFC3339, tr.At)
		if err != nil || !at.After(t) || (!last.IsZero() && !last.Before(at)) {
			return time.Time{}
		}
		return at
	}
	return time.Time{}
}

// WasMissed reports whether the trigger should have fired between last and now (the machine
// was off or serve was stopped).
func (tr Trigger) WasMissed(last, now time.Time) bool {
	if last.IsZero() {
		if tr.Type == TriggerOnce {
			at, err := time.Parse(time.RFC3339, tr.At)
			return err == nil && !at.After(now)
		}
		return false
	}
	n := tr.Next(last, last)
	return !n.IsZero() && !n.After(now)
}
