package actions

import (
	"fmt"
	"sort"
)

// Registry holds the actions a task may use, by Schema().ID. It is an ordinary object:
// the app builds one with NewDefaultRegistry, tests build their own.
type Registry struct {
	byID  map[string]Action
	order []string
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{byID: map[string]Action{}} }

// Register adds actions. An empty or duplicate ID, or a schema that contradicts itself
// (an enum without choices, a default outside them, a duplicate parameter), is an error:
// these are programming mistakes that tests catch.
func (r *Registry) Register(as ...Action) error {
	for _, a := range as {
		s := a.Schema()
		if s.ID == "" {
			return fmt.Errorf("register action %q: empty ID", s.Title)
		}
		if _, dup := r.byID[s.ID]; dup {
			return fmt.Errorf("register action %s: already registered", s.ID)
		}
		if err := s.check(); err != nil {
			return fmt.Errorf("register action %s: %w", s.ID, err)
		}
		if _, isLoop := a.(Looper); isLoop != s.IsLoop {
			return fmt.Errorf("register action %s: Schema.IsLoop is %v but the action %s a Looper", s.ID, s.IsLoop, map[bool]string{true: "is", false: "is not"}[isLoop])
		}
		r.byID[s.ID] = a
		r.order = append(r.order, s.ID)
	}
	return nil
}

// Get returns the action with the given ID.
func (r *Registry) Get(id string) (Action, bool) {
	a, ok := r.byID[id]
	return a, ok
}

// List returns every action in registration order.
func (r *Registry) List() []Action {
	out := make([]Action, 0, len(r.order))
	for _, id := range r.order {
		out = append(out, r.byID[id])
	}
	return out
}

// IDs returns the registered IDs, sorted.
func (r *Registry) IDs() []string {
	ids := append([]string(nil), r.order...)
	sort.Strings(ids)
	return ids
}

func (s Schema) check() error {
	seen := map[string]bool{}
	for _, p := range s.Params {
		if p.Name == "" || p.Label == "" || p.Kind == "" {
			return fmt.Errorf("parameter %q: name, label and kind are required", p.Name)
		}
		if seen[p.Name] {
			return fmt.Errorf("parameter %q declared twice", p.Name)
		}
		seen[p.Name] = true
		if p.Kind == KindEnum && len(p.Choices) == 0 {
			return fmt.Errorf("parameter %q: enum without choices", p.Name)
		}
		if p.Default != "" {
			if err := checkValue(p, p.Default); err != nil {
				return fmt.Errorf("parameter %q: default: %w", p.Name, err)
			}
		}
	}
	return nil
}
